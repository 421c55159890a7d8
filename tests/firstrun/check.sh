#!/usr/bin/env bash
# The first run of a new user: `make run` from a fresh clone in a private directory (mode 0700).
#   - as root, where PostgreSQL runs as `postgres`, which cannot enter the clone: the cluster lives in
#     /var/tmp/pglane-run-root-<hash> (owned by postgres, mode 0700), and the message says so;
#   - psql through pglane answers a query on the InsightsNow database;
#   - SIGINT to the foreground process group (what Ctrl-C sends) stops pglane and PostgreSQL: the
#     postmaster's PID is gone, as is every process running the clone's pglane;
#   - a second `make run` reuses the cluster and its data (no second load) and stops the same way;
#     while it runs, a third one refuses at once (pglane's address is taken) and leaves it running;
#   - as root, also as an ordinary user (nobody) from a clone of its own in a private directory.
# As an ordinary user it runs the first three checks as that user. Free ports for PostgreSQL, pglane
# and /metrics (PGLANE_PG_PORT, PGLANE_LISTEN, PGLANE_METRICS_LISTEN), so it never collides with
# another pglane on 6432. Clones HEAD of this checkout (commit before testing changes).
# SCALE=0.005 (10 accounts) keeps the load short; the nobody clone gets a copy of the root clone's build.
# Ends with "N passed, N failed". Usage: tests/firstrun/check.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../bench/insightsnow/lib.sh
source "$repo/bench/insightsnow/lib.sh"

# shellcheck source=../lib.sh
source "$repo/tests/lib.sh"

tmp=$(mktemp -d /tmp/pglane-firstrun.XXXXXX)   # mode 0700
job=""; rundirs=()
cleanup() {
    [ -z "$job" ] || kill -INT -- "-$job" 2>/dev/null
    for d in "${rundirs[@]}"; do
        if [ -f "$d/pgdata/postmaster.pid" ]; then
            kill -QUIT "$(head -1 "$d/pgdata/postmaster.pid")" 2>/dev/null
        fi
        case "$d" in /var/tmp/pglane-run-*) rm -rf "$d" ;; esac
    done
    rm -rf "$tmp" "${home:-}"
}
trap cleanup EXIT
set -m   # background jobs get their own process group, with SIGINT not ignored, like a terminal's

# alive PID: the process exists and is not a zombie (PID 1 of a container may reap late)
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# pids_in DIR: the live processes whose working directory is DIR (every process of a cluster: its data directory)
pids_in() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/cwd" 2>/dev/null)" = "$1" ] && alive "${p#/proc/}" && echo "${p#/proc/}"
    done
}

# pids_of EXE: the processes running that executable (zombies excluded)
pids_of() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$1" ] && alive "${p#/proc/}" && echo "${p#/proc/}"
    done
}

# run_once LABEL CLONE AS_USER EXPECT(load|reuse) EXPECT_DIR_PATTERN
run_once() {
    local label=$1 clone=$2 user=$3 expect=$4 dirpat=$5 log out i data pm pgl rc
    local pgport lport mport
    pgport=$(in_free_port); lport=$(in_free_port); mport=$(in_free_port)
    while [ "$lport" = "$pgport" ]; do lport=$(in_free_port); done
    while [ "$mport" = "$pgport" ] || [ "$mport" = "$lport" ]; do mport=$(in_free_port); done
    log=$tmp/$label.log
    local envs=(PGLANE_PG_PORT="$pgport" PGLANE_LISTEN="127.0.0.1:$lport" PGLANE_METRICS_LISTEN="127.0.0.1:$mport"
                SCALE=0.005)
    if [ -n "$user" ]; then
        (cd "$clone" && exec runuser -u "$user" -- env HOME="$clone" "${envs[@]}" make run) >"$log" 2>&1 &
    else
        (cd "$clone" && exec env "${envs[@]}" make run) >"$log" 2>&1 &
    fi
    job=$!
    # Ready when psql through pglane answers a query on InsightsNow (build and load included).
    out=""
    for i in $(seq 1 600); do
        out=$(PGPASSWORD=insightspass PGCONNECT_TIMEOUT=3 psql -X -h 127.0.0.1 -p "$lport" -U insightsuser \
              -d insightsnowdb -Atc "SELECT count(*) FROM accounts" 2>/dev/null) && [ -n "$out" ] && break
        kill -0 "$job" 2>/dev/null || break
        sleep 0.5
    done
    check "$label: psql through pglane answers a query on insightsnowdb" '[ "$out" = 10 ]' \
        "got '$out'; log: $(grep -v '^cc ' "$log" | tail -20 | tr '\n' ' ')"
    data=$(sed -n 's/.*(data in \(.*\)\/pgdata).*/\1/p' "$log" | head -1)
    check "$label: the message says where the data lives ($data)" '[[ "$data" == $dirpat ]]' \
        "expected $dirpat; log: $(head -5 "$log" | tr '\n' ' ')"
    [ -z "$data" ] || rundirs+=("$data")
    if [ "$expect" = load ]; then
        check "$label: the first run creates the cluster and loads InsightsNow" \
            'grep -q "creating a throwaway" "$log" && grep -q "loading InsightsNow" "$log"'
    else
        check "$label: the second run reuses the cluster and its data" \
            'grep -q "reusing the PostgreSQL 15 cluster in $data/pgdata" "$log" && ! grep -q "loading InsightsNow" "$log"'
    fi
    pm=$(head -1 "$data/pgdata/postmaster.pid" 2>/dev/null)
    pgl=$(pids_of "$clone/build/pglane")
    check "$label: PostgreSQL and pglane run ($pm, $pgl)" 'alive "$pm" && [ -n "$pgl" ] && [ -n "$(pids_in "$data/pgdata")" ]'

    if [ "$expect" = reuse ]; then
        (cd "$clone" && exec env "${envs[@]}" scripts/run-embedded.sh) >"$tmp/$label-again.log" 2>&1; rc=$?
        check "$label: another make run meanwhile refuses (address taken) and leaves this one running" \
            '[ $rc != 0 ] && grep -q "is taken by something else" "$tmp/$label-again.log" && alive "$pm" &&
             [ -n "$(pids_of "$clone/build/pglane")" ]' "rc $rc: $(tail -2 "$tmp/$label-again.log" | tr '\n' ' ')"
    fi

    kill -INT -- "-$job" 2>/dev/null   # Ctrl-C: SIGINT to the whole foreground process group
    for i in $(seq 1 120); do alive "$job" || break; sleep 0.5; done
    check "$label: SIGINT ends make run" '! alive "$job"'
    wait "$job" 2>/dev/null; job=""
    for i in $(seq 1 20); do alive "$pm" || break; sleep 0.5; done
    check "$label: no postgres process of the cluster is left (postmaster $pm)" \
        '[ -n "$pm" ] && ! alive "$pm" && [ ! -f "$data/pgdata/postmaster.pid" ] &&
         [ -z "$(pids_in "$data/pgdata")" ]'
    check "$label: no pglane process of the clone is left" '[ -z "$(pids_of "$clone/build/pglane")" ]'
}

head=$(git -C "$repo" rev-parse HEAD)
clone_into() {   # clone_into DIR: HEAD of this checkout, in DIR
    git clone -q --no-checkout "$repo" "$1" && git -C "$1" checkout -q --detach "$head"
}

if clone_into "$tmp/pglane"; then ok "clone of HEAD into a mode-0700 directory"; else fail "clone of HEAD"; fi
# Build first, so that the free ports picked below are used within seconds, not after a compile.
make -s -C "$tmp/pglane" >"$tmp/build.log" 2>&1 || fail "the clone builds" "$(tail -5 "$tmp/build.log" | tr '\n' ' ')"
if [ "$(id -u)" = 0 ]; then
    dirpat="/var/tmp/pglane-run-root-*"
    run_once root-1 "$tmp/pglane" "" load "$dirpat"
    check "root: the cluster's directory is owned by postgres, mode 0700" \
        '[ "$(stat -c "%U %a" "${rundirs[0]:-/nonexistent}")" = "postgres 700" ]'
    check "root: nothing of the cluster was created in the checkout" '[ ! -e "$tmp/pglane/.run/pgdata" ]'
    run_once root-2 "$tmp/pglane" "" reuse "$dirpat"

    # An ordinary user, with its own clone in its own private directory.
    home=$(mktemp -d /tmp/pglane-firstrun-nobody.XXXXXX)   # mode 0700
    rundirs+=("$home/pglane/.run")
    clone_into "$home/pglane"
    cp -r "$tmp/pglane/build" "$home/pglane/"   # newer than the sources: make run does not compile again
    chown -R nobody: "$home"
    run_once nobody "$home/pglane" nobody load "$home/pglane/.run"
else
    run_once user-1 "$tmp/pglane" "" load "$tmp/pglane/.run"
    run_once user-2 "$tmp/pglane" "" reuse "$tmp/pglane/.run"
fi

finish
