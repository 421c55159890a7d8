#!/bin/sh
# Runs each libFuzzer target for a bounded time: first on its regression inputs, then fuzzing a
# scratch copy of its seed corpus (so tests/fuzz/corpus/ stays as committed). Prints executions and
# final coverage per target; exits non-zero if any target crashed, leaked, hung or failed to run.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
set -u
dir=$1 seconds=$2
shift 2
src=tests/fuzz
failed=""

for t in "$@"; do
    bin=$dir/fuzz_$t
    log=$dir/fuzz_$t.log
    corpus=$dir/corpus-$t
    dict=""
    [ -f "$src/dict/$t.dict" ] && dict="-dict=$src/dict/$t.dict"

    # Regression inputs: each file is run once; any crash fails the target at once.
    regs=$(find "$src/regressions/$t" -type f ! -name '*.md' 2>/dev/null | sort)
    if [ -n "$regs" ]; then
        # shellcheck disable=SC2086
        if ! "$bin" $regs >"$dir/fuzz_$t.regressions.log" 2>&1; then
            echo "fuzz_$t: a regression input fails (see $dir/fuzz_$t.regressions.log)"
            tail -n 30 "$dir/fuzz_$t.regressions.log"
            failed="$failed $t"
            continue
        fi
    fi

    rm -rf "$corpus"
    mkdir -p "$corpus"
    cp "$src/corpus/$t/"* "$corpus/"
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/crash-$t-" $dict "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -n 1 |
          sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/')
    printf 'fuzz_%-8s %4ss  execs: %-10s %s  (%s)\n' "$t" "$seconds" "${execs:-?}" "${cov:-no coverage line}" "$log"
    if [ $rc -ne 0 ]; then
        echo "fuzz_$t: libFuzzer exited with $rc; the reproducer is $dir/crash-$t-*"
        grep -E 'ERROR: |SUMMARY: |runtime error|Test unit written' "$log" | head -n 10
        failed="$failed $t"
    fi
done

if [ -n "$failed" ]; then
    echo "make fuzz: FAILED:$failed"
    exit 1
fi
