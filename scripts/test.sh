#!/usr/bin/env bash
# The whole test suite: dependencies, the codegen check, the Swift tests, and the Python
# interop suite against a real `sluice serve`. Exits non-zero if any part failed; every
# part runs (a failing Swift test does not hide the interop results).
#
# Environment: SLUICE_SOAK=1 runs the flood and fuzz cases longer (docs/testing.md);
# SLUICE_FAULT_ROUNDS=N repeats each fault of the fault suite N times;
# SLUICE_TEST_PYTEST_ARGS adds pytest arguments (e.g. "-k echo -x").
# Each step has a time bound so the run ends well under 20 minutes on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
# The toolchain lives in /opt/swift; a login shell adds it to PATH, a bare CI shell may not.
if ! command -v swift >/dev/null && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="$PATH:/opt/swift/usr/bin"
fi
if ! command -v swift >/dev/null; then
    echo "test.sh: no swift toolchain on PATH (looked in PATH and /opt/swift/usr/bin)" >&2
    exit 1
fi

failed=()
step() { echo; echo "=== $*"; }

# Runs a step in a process group of its own, bounded by `timeout` (SIGTERM at the bound,
# SIGKILL 15 s later), then kills whatever the step left in its group (a test bundle that
# ignored SIGTERM, servers it started). Usage: bounded SECONDS COMMAND...
bounded() {
    local seconds="$1"
    shift
    setsid timeout --kill-after=15 "$seconds" "$@" &
    local group=$!
    wait "$group"
    local status=$?
    kill -KILL -- "-$group" 2>/dev/null
    return "$status"
}

step "dependencies"
deps_out="$(scripts/install-deps.sh)" || { echo "$deps_out"; echo "test.sh: scripts/install-deps.sh failed (its reason is above); nothing was tested" >&2; exit 1; }
echo "$deps_out"
python="$(echo "$deps_out" | sed -n 's/^python: //p' | tail -n 1)"

# The generated C, Swift and descriptor set must match proto/ exactly.
if [[ -x codegen/check.sh ]]; then
    step "codegen check"
    timeout --kill-after=15 300 codegen/check.sh || failed+=("codegen check")
elif [[ -x codegen/generate.sh ]]; then
    step "codegen check"
    timeout --kill-after=15 300 codegen/generate.sh --check || failed+=("codegen check")
fi

step "swift build --build-tests"
build_log="$(mktemp)"
if timeout --kill-after=15 900 swift build --build-tests >"$build_log" 2>&1; then
    tail -n 3 "$build_log"
else
    grep -E "error:" "$build_log" | head -n 40
    tail -n 20 "$build_log"
    failed+=("swift build")
fi
rm -f "$build_log"

# swift test runs the test bundle outside the step's process group; a bundle that hung
# past the bound (and its child processes) is found by its executable and killed.
kill_tree() {
    local pid="$1" child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child"; done
    kill -KILL "$pid" 2>/dev/null
}
kill_leftover_test_bundles() {
    local bundle pid
    bundle="$(swift build --show-bin-path 2>/dev/null)/sluicePackageTests.xctest"
    for pid in $(pgrep -x sluicePackageTe 2>/dev/null; pgrep -f -x "$bundle.*" 2>/dev/null); do
        [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$bundle" ]] && kill_tree "$pid"
    done
    return 0
}

# One run of `swift test` over the suites `$@` selects, bounded by $1 seconds: prints the
# failures and the runner's summary, names the tests a timeout left running, and records a
# failure under $2.
swift_suites() {
    local limit="$1" name="$2"; shift 2
    local swift_log swift_status
    swift_log="$(mktemp)"
    bounded "$limit" swift test --skip-build "$@" >"$swift_log" 2>&1
    swift_status=$?
    kill_leftover_test_bundles
    grep -E "^✘|error:|XCTAssert|failed \(" "$swift_log" | head -n 60
    grep -E "Test run with|Executed [0-9]+ tests?, with" "$swift_log" | tail -n 3
    if [[ $swift_status == 124 || $swift_status == 137 ]]; then
        # Timed out: name the tests that started and never finished (Swift Testing's lines).
        echo "$name timed out; tests still running:"
        comm -23 \
            <(sed -n 's/^◇ Test \(.*\) started\.$/\1/p' "$swift_log" | grep -v -e '^case passing' -e '^run$' | sort -u) \
            <(sed -n -E 's/^(✔|✘) Test (.*) (passed|failed) after .*/\2/p' "$swift_log" \
                | sed -E 's/ with [0-9]+ test cases?$//' | sort -u)
    fi
    if [[ $swift_status != 0 ]]; then
        tail -n 30 "$swift_log"
        failed+=("$name (exit $swift_status)")
    fi
    rm -f "$swift_log"
}

step "swift test (every suite but the cluster's and the fault suite)"
swift_suites 480 "swift test" --skip SluiceClusterTests --skip SluiceFaultTests

# The cluster suites run a real etcd (one member or three) with leases of a few seconds:
# alone, so that the rest of the suite's load on the machine's cores cannot starve etcd or
# the keep-alive past a lease's time to live.
step "swift test: cluster (SluiceClusterTests, a real etcd)"
swift_suites 300 "swift test: cluster" --filter SluiceClusterTests

# Replication under faults (docs/testing.md, "The fault suite"): three brokers in network
# namespaces and a 3-member etcd per test, alone for the same reason as the cluster step.
# SLUICE_FAULT_ROUNDS repeats each fault; every fault's report is printed here.
step "fault suite (SluiceFaultTests: replication under faults)"
export SLUICE_FAULT_REPORT
SLUICE_FAULT_REPORT="$(mktemp)"
swift_suites 600 "fault suite" --filter SluiceFaultTests
cat "$SLUICE_FAULT_REPORT"
rm -f "$SLUICE_FAULT_REPORT"
unset SLUICE_FAULT_REPORT
# A bundle killed at the bound never ran its cleanup: its namespaces go now.
scripts/fault/remove-leftover-networks.sh

step "python suites: setup scripts (tests/setup) and interop (tests/interop)"
# shellcheck disable=SC2086 # word splitting of the extra args is intended
bounded 900 "$python" -m pytest tests/setup tests/interop -q --tb=short -p no:cacheprovider ${SLUICE_TEST_PYTEST_ARGS:-}
pytest_status=$?
if [[ $pytest_status != 0 ]]; then failed+=("pytest (exit $pytest_status)"); fi

echo
if (( ${#failed[@]} > 0 )); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all test suites passed"
