#!/bin/sh
# bench/run.sh: the sipstack benchmark (`make bench`).
#
#   bench/run.sh            full run (17-20 min)
#   bench/run.sh --quick    short variant (~3.5 min, < 5 min)
#   bench/run.sh --help     other options (sections, rates, output dir)
#
# Starts sipstack (bench/scripts/bench.lua) and sipp on free ports of
# 127.0.0.1 only, prints the figures and writes them, with the logs, to a
# new /tmp/sipstack-bench.* directory (or --out DIR). Needs sipp,
# valgrind and a built tree (ninja -C build). Everything it starts is
# stopped on exit, including on Ctrl-C / SIGTERM; the whole run is bounded
# by a hard time limit (bench.py --time-limit: 1500 s, 295 s with --quick).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

for t in sipp valgrind callgrind_control python3; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "bench: $t not found (make deps)" >&2; exit 2; }
done
[ -x "$root/build/sipstack" ] || ninja -C "$root/build" || exit 2

pid=
cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		# bench.py kills its own children on SIGTERM
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1; i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM HUP

python3 "$here/bench.py" "$@" &
pid=$!
wait "$pid"
rc=$?
pid=
exit $rc
