#!/bin/sh
# Builds a man page from its template: every line "@README <markdown heading>@" is replaced by that
# section of README.md (man/md2man.awk), and @VERSION@ by pglane's version (proxy/proxy.h).
# Usage: man/gen.sh TEMPLATE README.md OUT
set -eu
tmpl=$1 readme=$2 out=$3
dir=$(dirname "$0")
version=$(sed -n 's/^#define PGLANE_VERSION "\(.*\)"/\1/p' "$dir/../proxy/proxy.h")
mkdir -p "$(dirname "$out")"
{
    while IFS= read -r line; do
        case "$line" in
        @README\ *@)
            heading=${line#@README }; heading=${heading%@}
            grep -qxF -- "$heading" "$readme" || { echo "$tmpl: no section '$heading' in $readme" >&2; exit 1; }
            awk -v section="$heading" -f "$dir/md2man.awk" "$readme" ;;
        *)  printf '%s\n' "$line" | sed "s/@VERSION@/$version/g" ;;
        esac
    done <"$tmpl"
} >"$out.tmp"
mv "$out.tmp" "$out"
