#!/usr/bin/env bash
# The configuration keys of each section, as the code knows them (conf/keys*.c) and as README.md's
# "Configuration reference" lists them (first column of each section's table), one "section key" line
# each, sorted. pglane.ini(5) is generated from that README section, so it lists the same keys.
# Usage: tests/install/keys.sh code REPO | tests/install/keys.sh readme README.md
set -euo pipefail

code_table() {   # code_table SECTION FILE ARRAY: the names of K*("name", ...) up to KEND
    awk -v sect="$1" -v table="$3" '
        index($0, table "[] = {") { on = 1; next }
        on && /KEND/ { exit }
        on {
            s = $0
            while (match(s, /K[A-Z]*\("[^"]+"/)) {
                k = substr(s, RSTART, RLENGTH); sub(/^K[A-Z]*\("/, "", k); sub(/"$/, "", k)
                print sect, k
                s = substr(s, RSTART + RLENGTH)
            }
        }' "$2"
}

case "${1:-}" in
code)
    r=$2
    {
        code_table pglane "$r/conf/keys.c" pglane_keys
        code_table server "$r/conf/keys.c" server_keys
        code_table lane "$r/conf/keys_lane.c" conf_lane_keys
        echo "lane set.<guc>"       # any key starting with "set." (conf_lane_set_guc)
        echo "lane tenant_weight.ID"   # any key starting with "tenant_weight." (conf_lane_set_tenant_weight)
        code_table route "$r/conf/keys_route.c" conf_route_keys
        echo "peers peer.N"; echo "peers N"   # [peers]: a peer id as the key (conf/keys_peers.c)
    } | sort ;;
readme)
    awk '
        /^## / { on = ($0 == "## Configuration reference"); next }
        on && /^### / { sect = $0; gsub(/^### `\[|(\.NAME)?\]`$/, "", sect); next }
        on && sect != "" && /^\| `/ {
            cell = $0; sub(/^\| /, "", cell); sub(/ \|.*/, "", cell)
            while (match(cell, /`[^`]+`/)) {
                print sect, substr(cell, RSTART + 1, RLENGTH - 2)
                cell = substr(cell, RSTART + RLENGTH)
            }
        }' "$2" | sort ;;
*)
    echo "usage: $0 code REPO | readme README.md" >&2; exit 2 ;;
esac
