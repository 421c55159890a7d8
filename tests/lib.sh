# Shared by the script suites (tests/*/check.sh): counters and reporting that end a suite with
# "N passed, N failed". Source it: source "$repo/tests/lib.sh"
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1${2:+: $2}"; }
# check NAME EXPR [DETAIL]: ok if EXPR (eval'd) succeeds, else fail with DETAIL.
check() { if eval "$2"; then ok "$1"; else fail "$1" "${3:-}"; fi; }
# Prints the counts and exits 0 if nothing failed, 1 otherwise.
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit; }
