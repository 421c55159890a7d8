#!/usr/bin/env bash
# make install into a scratch DESTDIR, checked file by file:
#   - the binary, pglane(1), pglane.ini(5), the examples, the Grafana dashboard and pglane.service
#     where PREFIX puts them;
#   - the installed binary runs and accepts the installed example configurations (--check);
#   - man -l renders both pages without a groff warning; pglane.ini(5) describes every key;
#   - the configuration keys of the code (conf/keys*.c) are exactly those of README.md's reference
#     (from which pglane.ini(5) is generated), and the comparison notices a key missing from it;
#   - systemd-analyze verify accepts the unit (no message at all), which runs as user pglane with
#     Type=notify, reloads with SIGHUP and is sandboxed; PREFIX=/usr reads /etc/pglane/pglane.ini.
# Ends with "N passed, N failed". Usage: tests/install/check.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib.sh
source "$repo/tests/lib.sh"

tmp=$(mktemp -d /tmp/pglane-install-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
d=$tmp/root
# systemd-analyze and man (packages systemd, man-db): installed when missing (as root; otherwise
# install-deps prints the apt-get line and the checks that need them fail).
"$repo/scripts/install-deps.sh" systemd man-db >"$tmp/deps.log" 2>&1 || cat "$tmp/deps.log"
p=$d/usr/local
version=$(sed -n 's/^#define PGLANE_VERSION "\(.*\)"/\1/p' "$repo/proxy/proxy.h")

if make -s -C "$repo" install DESTDIR="$d" >"$tmp/make.log" 2>&1; then ok "make install DESTDIR=..."
else fail "make install DESTDIR=..." "$(tail -5 "$tmp/make.log" | tr '\n' ' ')"; fi
for f in bin/pglane:755 share/man/man1/pglane.1:644 share/man/man5/pglane.ini.5:644 \
         share/pglane/pglane.ini:644 share/pglane/userlist.txt:644 share/pglane/insightsnow.ini:644 \
         share/pglane/pglane-dashboard.json:644 \
         lib/systemd/system/pglane.service:644; do
    check "installed $f" '[ -f "$p/${f%:*}" ] && [ "$(stat -c %a "$p/${f%:*}")" = "${f#*:}" ]'
done
check "nothing is installed outside PREFIX" '[ "$(ls -A "$d")" = usr ] && [ "$(ls -A "$d/usr")" = local ]'

out=$("$p/bin/pglane" --version 2>&1)
check "the installed binary runs (--version: $out)" '[ "$out" = "pglane $version" ]'
# Every C library function pglane and its libraries call is the C library's: libpg_query exports a
# strnlen of its own, which took the place of libc's for the whole process when it came first.
bind=$(LD_DEBUG=bindings "$p/bin/pglane" --version 2>&1 >/dev/null)
foreign=$(printf '%s\n' "$bind" | grep -E "normal symbol \`[^']*' \[GLIBC_" |
          grep -vE " to [^ ]*/(libc|libm|ld-linux-x86-64|libpthread|libdl|librt)\.so[^ ]* " |
          grep -vF " to $p/bin/pglane " | head -3)      # stdin, stdout, stderr: copied into the binary
check "C library symbols bind to the C library (LD_DEBUG=bindings)" \
    '[ -n "$bind" ] && [ -z "$foreign" ]' "$foreign"
for ini in pglane.ini insightsnow.ini; do
    out=$("$p/bin/pglane" --check "$p/share/pglane/$ini" 2>&1)
    check "the installed example $ini passes --check" '[[ "$out" == *"configuration OK"* ]]' "$out"
done

# man -l renders the pages; groff's warnings (bad requests, escapes) would go to stderr.
for page in man1/pglane.1:PGLANE man5/pglane.ini.5:PGLANE.INI; do
    MANWIDTH=100 man --warnings -l "$p/share/man/${page%:*}" >"$tmp/page.txt" 2>"$tmp/page.err"; rc=$?
    check "man -l ${page%:*} renders without warnings" \
        '[ $rc = 0 ] && [ ! -s "$tmp/page.err" ] && grep -q "^${page#*:}(" "$tmp/page.txt" && grep -q "^NAME" "$tmp/page.txt"' \
        "rc $rc: $(head -3 "$tmp/page.err" | tr '\n' ' ')"
done
check "pglane(1) describes the signals, the admin console and the metrics" \
    'MANWIDTH=200 man -l "$p/share/man/man1/pglane.1" 2>/dev/null | grep -q "SIGHUP" &&
     MANWIDTH=200 man -l "$p/share/man/man1/pglane.1" 2>/dev/null | grep -q "SHOW LANES" &&
     MANWIDTH=200 man -l "$p/share/man/man1/pglane.1" 2>/dev/null | grep -q "pglane_errors_total"'

# One source of truth: the code's keys, README's reference, and the page generated from it.
"$repo/tests/install/keys.sh" code "$repo" >"$tmp/keys.code"
"$repo/tests/install/keys.sh" readme "$repo/README.md" >"$tmp/keys.readme"
diff "$tmp/keys.code" "$tmp/keys.readme" >"$tmp/keys.diff"
check "README.md's configuration reference lists exactly the keys of conf/keys*.c ($(wc -l <"$tmp/keys.code") keys)" \
    '[ -s "$tmp/keys.code" ] && [ ! -s "$tmp/keys.diff" ]' "code < > README: $(tr '\n' ' ' <"$tmp/keys.diff")"
grep -v '`stats_fingerprints`' "$repo/README.md" >"$tmp/README.md"
"$repo/tests/install/keys.sh" readme "$tmp/README.md" >"$tmp/keys.less"
check "the comparison notices a key missing from README.md" '! diff -q "$tmp/keys.code" "$tmp/keys.less" >/dev/null'
missing=""
while read -r sect key; do
    grep -qF "\\fB$key\\fR" "$p/share/man/man5/pglane.ini.5" || missing="$missing $sect.$key"
done <"$tmp/keys.code"
check "pglane.ini(5) describes every key" '[ -z "$missing" ]' "missing:$missing"

# The unit. verify checks ExecStart's binary and the man pages of Documentation= on this machine:
# point it at the DESTDIR copies; everything else is verified as installed.
unit=$p/lib/systemd/system/pglane.service
mkdir -p "$tmp/unit"
sed "s|^ExecStart=/usr/local/bin/pglane |ExecStart=$p/bin/pglane |" "$unit" >"$tmp/unit/pglane.service"
if command -v systemd-analyze >/dev/null; then
    MANPATH=$p/share/man systemd-analyze verify "$tmp/unit/pglane.service" >"$tmp/verify.out" 2>&1; rc=$?
    check "systemd-analyze verify accepts pglane.service without a message" '[ $rc = 0 ] && [ ! -s "$tmp/verify.out" ]' \
        "rc $rc: $(head -5 "$tmp/verify.out" | tr '\n' ' ')"
    echo "Bogus=1" >>"$tmp/unit/pglane.service"
    MANPATH=$p/share/man systemd-analyze verify "$tmp/unit/pglane.service" >"$tmp/verify.out" 2>&1
    check "systemd-analyze verify reports a bad key (the check above can fail)" 'grep -q Bogus "$tmp/verify.out"'
else
    fail "systemd-analyze is installed (package systemd)"
fi
for line in "Type=notify" "User=pglane" 'ExecReload=/bin/kill -HUP $MAINPID' \
            "ExecStart=/usr/local/bin/pglane /usr/local/etc/pglane/pglane.ini" "LimitNOFILE=65536" \
            "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes" "PrivateTmp=yes"; do
    check "pglane.service has $line" 'grep -qxF "$line" "$unit"'
done
make -s -C "$repo" install PREFIX=/usr DESTDIR="$tmp/usr-root" >"$tmp/make.log" 2>&1
check "PREFIX=/usr: the unit runs /usr/bin/pglane /etc/pglane/pglane.ini" \
    'grep -qxF "ExecStart=/usr/bin/pglane /etc/pglane/pglane.ini" "$tmp/usr-root/usr/lib/systemd/system/pglane.service" &&
     [ -x "$tmp/usr-root/usr/bin/pglane" ]'

finish
