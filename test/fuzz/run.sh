#!/bin/sh
# test/fuzz/run.sh  Runs the libFuzzer target for a given time (make fuzz)
#
# Usage: run.sh BUILD_DIR SECONDS
#
# The seeds are put together anew in BUILD_DIR/fuzz-seeds at every run:
# test/fuzz/seeds/ (hand-written requests and responses), the findings
# of test/fuzz/regressions/, the RFC 4475/5118 torture messages of
# ../shared/conformance (copied, never written), and the messages of the
# tests' sipp scenarios (sipp_seeds.py). What the fuzzer finds new goes
# into BUILD_DIR/fuzz-corpus, which stays from one run to the next; a
# crash, leak, ASan or UBSan report into BUILD_DIR/fuzz-artifacts/ (then
# the exit status is not 0: add the input to test/fuzz/regressions/).
# The fuzzer runs under nice -n 19, one process. At the end: executions,
# exec/s, coverage (libFuzzer's cov: edges, ft: features), corpus size.
set -u

build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:?usage: run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared="$repo/../shared/conformance"
fuzzer="$build/test/fuzz/fuzz_sip"
seeds="$build/fuzz-seeds"
corpus="$build/fuzz-corpus"
artifacts="$build/fuzz-artifacts"
log="$build/fuzz.log"

[ -x "$fuzzer" ] || { echo "run.sh: no $fuzzer (make fuzz builds it)"; exit 2; }

rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$artifacts"
cp "$here"/seeds/* "$seeds"/
for f in "$here"/regressions/*; do
	case "$f" in *README.md|*'*') ;; *) cp "$f" "$seeds"/ ;; esac
done
if [ -d "$shared" ]; then
	for f in "$shared"/rfc4475/*.dat "$shared"/rfc5118/wire/*; do
		[ -f "$f" ] && cp "$f" "$seeds/$(basename "$(dirname "$f")")-$(basename "$f")"
	done
else
	echo "run.sh: no $shared: the torture messages are not among the seeds"
fi
python3 "$here/sipp_seeds.py" "$repo" "$seeds"
echo "run.sh: $(ls "$seeds" | wc -l) seeds, $(ls "$corpus" | wc -l) inputs in the corpus; fuzzing for ${secs} s"

# UBSan stops at its first report (a crash for libFuzzer); leaks are
# findings too
start=$(date +%s)
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1} \
nice -n 19 "$fuzzer" -max_total_time="$secs" -timeout=10 \
	-dict="$here/sip.dict" -artifact_prefix="$artifacts/" \
	-print_final_stats=1 "$corpus" "$seeds" >"$log" 2>&1
status=$?
took=$(( $(date +%s) - start ))

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
units=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')

tail -n 5 "$log"
echo "fuzz: ${execs:-?} executions in ${took} s (${rate:-?} exec/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${units:-?} inputs; log $log"
if [ "$status" -ne 0 ]; then
	grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix)' "$log" | head -5
	echo "fuzz: FINDING (exit status $status): see $log and $artifacts/"
	exit "$status"
fi
echo "fuzz: no finding"
