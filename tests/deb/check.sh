#!/usr/bin/env bash
# The Debian package, from a clean clone of HEAD (commit before testing changes):
#   - `make deb` builds it with dpkg-buildpackage -us -uc -b, and lintian reports no error (E:);
#   - as root: dpkg -i installs it on this machine: the pglane system user exists, the binary, man
#     pages and unit are in place, /etc/pglane/pglane.ini and userlist.txt are conffiles, the
#     userlist is 0640 root:pglane, and the service is neither enabled nor started;
#     then the installed binary runs as user pglane with the installed config (pointed at a test
#     PostgreSQL 15 on a free port, a user added to the installed userlist) and psql connects through
#     it; dpkg --purge removes it all again (and the pglane user, when this test created it);
#   - as an ordinary user: the package's files are extracted to a scratch directory instead, and the
#     extracted binary serves a query with the extracted config as this user.
# Never touches a pglane package that was installed before (it fails instead), nor port 5432.
# Ends with "N passed, N failed". Usage: tests/deb/check.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../bench/insightsnow/lib.sh
source "$repo/bench/insightsnow/lib.sh"

# shellcheck source=../lib.sh
source "$repo/tests/lib.sh"

root=0; [ "$(id -u)" = 0 ] && root=1
tmp=$(mktemp -d /tmp/pglane-deb-check.XXXXXX)
chmod 755 "$tmp"
installed_by_us=0; user_by_us=0; pid=""
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null
    in_cluster_stop
    if [ "$installed_by_us" = 1 ]; then
        dpkg_retry --purge pglane >/dev/null 2>&1
    fi
    if [ "$user_by_us" = 1 ] && getent passwd pglane >/dev/null; then
        userdel pglane 2>/dev/null
        getent group pglane >/dev/null && groupdel pglane 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# dpkg waits for no lock: retry while another dpkg or apt holds it.
dpkg_retry() {
    local i out rc
    for i in $(seq 1 60); do
        out=$(dpkg "$@" 2>&1); rc=$?
        if [ $rc = 0 ] || ! grep -q "lock" <<<"$out"; then printf '%s\n' "$out"; return $rc; fi
        sleep 1
    done
    printf '%s\n' "$out"; return 1
}

if [ $root = 1 ] && dpkg-query -W -f='${Status}' pglane 2>/dev/null | grep -q "ok installed"; then
    fail "pglane is not installed on this machine already (this test will not replace it)"
    finish
fi

# ---- build from a clean clone
clone=$tmp/pglane
git clone -q --no-checkout "$repo" "$clone" && git -C "$clone" checkout -q --detach "$(git -C "$repo" rev-parse HEAD)"
make -C "$clone" deb >"$tmp/deb.log" 2>&1; rc=$?
echo "# make deb done at ${SECONDS}s"
check "make deb builds the package from a clean clone" '[ $rc = 0 ]' "$(grep -v '^cc ' "$tmp/deb.log" | tail -8 | tr '\n' ' ')"
deb=$(ls "$clone"/build/deb/pglane_*_*.deb 2>/dev/null | head -1)
check "the package file exists ($(basename "${deb:-none}"))" '[ -f "$deb" ]'
[ -f "$deb" ] || finish
# make deb ran lintian (and would have failed on an error): its report is in the log.
check "lintian ran and shows no E: line" 'grep -q "^lintian " "$tmp/deb.log" && ! grep -q "^E:" "$tmp/deb.log"' \
    "$(grep '^E:' "$tmp/deb.log" | head -5 | tr '\n' ' ')"
dpkg-deb -c "$deb" >"$tmp/contents"
for f in ./usr/bin/pglane ./usr/share/man/man1/pglane.1.gz ./usr/share/man/man5/pglane.ini.5.gz \
         ./lib/systemd/system/pglane.service ./etc/pglane/pglane.ini ./etc/pglane/userlist.txt; do
    check "the package holds $f" 'grep -q " $f\$" "$tmp/contents"'
done
check "the package ships the userlist mode 0640" 'grep -q "^-rw-r----- .* ./etc/pglane/userlist.txt$" "$tmp/contents"'
dpkg-deb -e "$deb" "$tmp/control"
check "the package marks /etc/pglane/pglane.ini and userlist.txt as conffiles" \
    'grep -qx /etc/pglane/pglane.ini "$tmp/control/conffiles" && grep -qx /etc/pglane/userlist.txt "$tmp/control/conffiles"'

# ---- a test PostgreSQL 15 with a user to log in as
in_cluster_init "$tmp/pg" && in_cluster_start
check "a test PostgreSQL 15 runs on port ${IN_PORT:-?}" '[ -f "$IN_DATA/postmaster.pid" ]'
in_psql -d postgres -c "CREATE ROLE debapp LOGIN PASSWORD 'debpass'" -c "CREATE DATABASE debdb OWNER debapp" >/dev/null
lport=$(in_free_port); while [ "$lport" = "$IN_PORT" ]; do lport=$(in_free_port); done

if [ $root = 1 ]; then
    getent passwd pglane >/dev/null || user_by_us=1
    installed_by_us=1
    out=$(dpkg_retry -i "$deb"); rc=$?
    echo "# dpkg -i done at ${SECONDS}s"
    check "dpkg -i installs the package" '[ $rc = 0 ]' "$(tail -5 <<<"$out" | tr '\n' ' ')"
    check "postinst created the pglane system user" \
        'getent passwd pglane >/dev/null && [ "$(id -u pglane)" -lt 1000 ] && getent group pglane >/dev/null'
    # Slim images tell dpkg to leave out /usr/share/man (path-exclude): the package holds them (above).
    man=(/usr/share/man/man1/pglane.1.gz /usr/share/man/man5/pglane.ini.5.gz)
    if grep -qs '^path-exclude=*/usr/share/man' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/*; then
        echo "# dpkg excludes /usr/share/man on this machine: the man pages are checked in the package only"
        man=()
    fi
    for f in /usr/bin/pglane "${man[@]}" /lib/systemd/system/pglane.service /usr/share/pglane/insightsnow.ini; do
        check "installed $f" '[ -f "$f" ]'
    done
    check "/etc/pglane/pglane.ini is root:root 0644" '[ "$(stat -c "%U:%G %a" /etc/pglane/pglane.ini)" = "root:root 644" ]'
    check "/etc/pglane/userlist.txt is root:pglane 0640" '[ "$(stat -c "%U:%G %a" /etc/pglane/userlist.txt)" = "root:pglane 640" ]'
    check "dpkg records both as conffiles" \
        'dpkg-query -W -f="\${Conffiles}" pglane | grep -q "/etc/pglane/pglane.ini " &&
         dpkg-query -W -f="\${Conffiles}" pglane | grep -q "/etc/pglane/userlist.txt "'
    check "the service is not enabled" '! ls /etc/systemd/system/*.wants/pglane.service >/dev/null 2>&1'
    running=""
    for p in /proc/[0-9]*; do [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/bin/pglane ] && running="$running ${p#/proc/}"; done
    check "the service was not started (no /usr/bin/pglane process)" '[ -z "$running" ]' "pids:$running"
    [ ${#man[@]} = 0 ] ||
        check "man finds the installed pages" 'man -w pglane >/dev/null 2>&1 && man -w 5 pglane.ini >/dev/null 2>&1'
    bin=/usr/bin/pglane; etc=/etc/pglane; as=(runuser -u pglane --)
else
    dpkg-deb -x "$deb" "$tmp/x"
    bin=$tmp/x/usr/bin/pglane; etc=$tmp/x/etc/pglane; as=()
fi

# ---- the installed binary, the installed config (pointed at the test cluster), user pglane
sed -i -e "/^\[pglane\]/,/^\[/ s/^listen = [^ ]*/listen = 127.0.0.1:$lport/" \
       -e "/^\[server\.main\]/,/^\[/ s/^port = [0-9]*/port = $IN_PORT/" "$etc/pglane.ini"
echo '"debapp" "debpass"' >>"$etc/userlist.txt"
out=$("${as[@]}" "$bin" --check "$etc/pglane.ini" 2>&1)
check "the installed binary accepts the installed config${as:+ as user pglane}" '[[ "$out" == *"configuration OK"* ]]' "$out"
"${as[@]}" "$bin" "$etc/pglane.ini" >"$tmp/pglane.log" 2>&1 &
pid=$!
answer=""
for _ in $(seq 1 100); do
    answer=$(PGPASSWORD=debpass PGCONNECT_TIMEOUT=3 psql -X -h 127.0.0.1 -p "$lport" -U debapp -d debdb -Atc \
             "SELECT current_user || ' ' || current_setting('port')" 2>/dev/null) && [ -n "$answer" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
check "psql through the installed pglane reaches the test PostgreSQL ($answer)" '[ "$answer" = "debapp $IN_PORT" ]' \
    "log: $(tail -5 "$tmp/pglane.log" | tr '\n' ' ')"
# runuser stays the parent of the command: pglane is its child.
pgl=$pid
if [ $root = 1 ]; then
    pgl=""
    for p in /proc/[0-9]*; do
        [ "$(cut -d' ' -f4 "$p/stat" 2>/dev/null)" = "$pid" ] && [ "$(readlink "$p/exe" 2>/dev/null)" = "$bin" ] && pgl=${p#/proc/}
    done
fi
if [ $root = 1 ]; then
    check "pglane runs as user pglane" '[ -n "$pgl" ] && [ "$(stat -c %U "/proc/$pgl")" = pglane ]'
fi
check "pglane does not warn about the userlist's permissions" '! grep -q "readable by other users" "$tmp/pglane.log"'
kill -TERM "${pgl:-$pid}" 2>/dev/null
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
wait "$pid"; rc=$?; pid=""
check "SIGTERM stops it cleanly" '[ $rc = 0 ]'

if [ $root = 1 ]; then
    out=$(dpkg_retry --purge pglane); rc=$?
    echo "# dpkg --purge done at ${SECONDS}s"
    installed_by_us=0
    check "dpkg --purge removes the package and its configuration" \
        '[ $rc = 0 ] && [ ! -e /usr/bin/pglane ] && [ ! -e /etc/pglane ] && ! dpkg-statoverride --list /etc/pglane/userlist.txt >/dev/null' \
        "$(tail -3 <<<"$out" | tr '\n' ' ')"
fi
finish
