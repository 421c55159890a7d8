#!/usr/bin/env bash
# Runs every unit and integration test binary of a build directory and ends with one summary line.
# Usage: tests/run.sh BUILD_DIR [name-filter]
set -u
build=${1:-build}
filter=${2:-}
passed=0; failed=0; failed_bins=(); digest=
export PGLANE_BIN="$PWD/$build/pglane"
# cmocka binaries, then script suites (tests/*/check.sh) that end with their own "N passed, N failed".
# NAME@cache_unnamed runs binary NAME again with PGLANE_TEST_CACHE_UNNAMED=1 (every lane of its
# pglanes gets cache_unnamed = on): the prepared-statement suites must pass that way too.
# PGLANE_TEST_WORKERS=N in the environment (passed on to every binary) runs each pglane the harness
# starts with workers = N unless its config sets workers itself (tests/integration/harness.h).
variants=()
for bin in "$build"/tests/integration_test_prepared "$build"/tests/integration_test_prepared_drivers; do
    [ -x "$bin" ] && variants+=("$bin@cache_unnamed")
done
for bin in "$build"/tests/unit_* "$build"/tests/integration_* "${variants[@]}" tests/*/check.sh; do
    case "$bin" in *"$filter"*) ;; *) continue ;; esac
    env_extra=()
    case "$bin" in *@cache_unnamed) bin=${bin%@cache_unnamed}; env_extra=(PGLANE_TEST_CACHE_UNNAMED=1) ;; esac
    [ -x "$bin" ] || continue
    # Script suites do not run pglane's code: the sanitizer build skips them.
    case "$bin" in *.sh) [ "$build" = build-asan ] && continue ;; esac
    echo "== $bin${env_extra:+ (${env_extra[*]})}"
    out=$(env "${env_extra[@]}" timeout 900 "$bin" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    case "$bin" in *.sh)
        p=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' | tail -1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' | tail -1) ;;
    esac
    p=${p:-0}; f=${f:-0}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi   # crashed or aborted before cmocka's summary
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" != 0 ]; then
        failed_bins+=("$(basename "$bin")${env_extra:+@cache_unnamed}")
        # What failed, again at the end (a long run's own output may be cut to its tail): cmocka's
        # failure lines and the sanitizers' summaries, with the exit status.
        digest+="-- $(basename "$bin")${env_extra:+@cache_unnamed} (exit $rc)"$'\n'
        digest+=$(printf '%s\n' "$out" | grep -E '^\[ +(ERROR|FAILED|LINE) +\]|^SUMMARY: |runtime error:|^harness: ' |
                  grep -v '^\[  FAILED  \] [0-9]* test' | awk '!seen[$0]++' | head -n 30)$'\n'
    fi
done
[ -z "$digest" ] || printf 'failures:\n%s' "$digest"
[ ${#failed_bins[@]} -eq 0 ] || echo "failing: ${failed_bins[*]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
