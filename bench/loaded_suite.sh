#!/usr/bin/env bash
# The suite under load (issue 28, point 3): the README's test command (.ci/run) RUNS times in a row while BURNERS processes
# (default: one per core) keep every core busy. The burners are started here and stopped by their PIDs when the script
# ends, however it ends. Run it from a clone of the repository on an otherwise quiet machine:
#
#     bash bench/loaded_suite.sh [RUNS=3] [BURNERS=$(nproc)]
#
# Each run's whole output goes to test-artifacts/loaded_suite_<n>.log; one line per run (exit status, seconds, the load
# average at its end, pytest's summary line) is printed and appended to test-artifacts/loaded_suite.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
burners=${2:-$(nproc)}
mkdir -p test-artifacts
pids=()
stop_burners() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null; }
trap stop_burners EXIT
for _ in $(seq "$burners"); do python3 -c 'while True: pass' & pids+=($!); done
echo "burners: ${pids[*]} (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a test-artifacts/loaded_suite.txt
failed=0
for n in $(seq "$runs"); do
    start=$(date +%s)
    bash .ci/run > "test-artifacts/loaded_suite_$n.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || failed=1
    line="run $n: exit $rc, $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg) at the end;"
    line="$line $(grep -E '^=+ .*(passed|failed|error).* =+$' "test-artifacts/loaded_suite_$n.log" | tail -1)"
    echo "$line" | tee -a test-artifacts/loaded_suite.txt
done
exit $failed
