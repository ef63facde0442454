#!/usr/bin/env bash
# Latency of Nexmark as streaming SQL: from an event's creation to the
# committed result it completes, at a checkpoint every 100 ms, -w 2.
#
# The job generates EVENTS events at RATE events a second (the Nexmark
# source's 'rate'); event n is created at start + n / RATE, and its event
# time is BASE + n / 10 ms (Nexmark's event clock: 10,000 events a second),
# so a result whose last event has event time E was complete at
# start + (E - BASE) * 10 / RATE seconds (start: the moment the job is
# launched, which makes every figure a little late, by the job's start-up).
# A result's event time E is, per query: q0, q1 its bid's date_time; q7 the
# end of its bid's 10-second window; q8 the end of the 10-second window that
# starts at its starttime; q11 its session's end. Rows are printed (as CSV)
# once a checkpoint covers them; each chunk read from the job's stdout is
# stamped when it arrives. Results whose last event comes in the first
# second are left out (the job's start), as are the rows the end of the
# input fires.
#   bench/sql/latency.sh [EVENTS] [RATE]     (default 3000000 100000)
#   QUERIES='q0 q7' bench/sql/latency.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/sql/query_script.sh
EVENTS=${1:-3000000}
RATE=${2:-100000}
cargo build --release --quiet
WEIR=$PWD/target/release/weir
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '%-5s %9s %9s %9s %9s %9s\n' query results "p50 ms" "p99 ms" "max ms" "ckpt MB"
ddl() {
  echo "CREATE UNBOUNDED EXTERNAL TABLE $1 STORED AS NEXMARK LOCATION '$1' OPTIONS ('events' '$EVENTS', 'rate' '$RATE');"
}
for q in ${QUERIES:-q0 q1 q7 q8 q11}; do
  SCRIPT=$WORK/$q.sql
  query_script "$SCRIPT" "$q" ddl
  rm -rf "$WORK/ck"
  python3 - "$q" "$WEIR" "$SCRIPT" "$WORK/ck" "$EVENTS" "$RATE" <<'PY'
import csv, io, os, subprocess, sys, threading, time
from datetime import datetime, timezone

q, weir, script, ck, events, rate = sys.argv[1:]
events, rate = int(events), int(rate)
BASE = 1_436_918_400_000  # weir_sql::nexmark::BASE_TIME
# the column of the result's event time, and what completes it after that
COLUMN = {"q0": 3, "q1": 3, "q7": 3, "q8": 2, "q11": 3}[q]
def completed(ms):
    if q == "q7":
        return (ms // 10_000 + 1) * 10_000 if ms % 10_000 else ms
    if q == "q8":
        return ms + 10_000
    return ms

start = time.time()
job = subprocess.Popen(
    [weir, "sql", "-f", script, "--checkpoint-dir", ck, "--checkpoint-interval", "100ms", "-w", "2"],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
peak = [0]
def sample():
    while job.poll() is None:
        size = 0
        for root, _, files in os.walk(ck):
            for f in files:
                try:
                    size += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
        peak[0] = max(peak[0], size)
        time.sleep(0.5)
threading.Thread(target=sample, daemon=True).start()
chunks = []
fd = job.stdout.fileno()
while True:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        break
    chunks.append((time.time(), chunk))
err = job.stderr.read().decode()
if job.wait() != 0:
    sys.exit(f"{q} failed: {err}")
# whole lines, each stamped with the arrival of the chunk that ended it
latencies, rest = [], b""
end = BASE + events // 10  # the input's last event time, about
for at, chunk in chunks:
    data = rest + chunk
    lines = data.split(b"\n")
    rest = lines.pop()
    for row in csv.reader(io.StringIO(b"\n".join(lines).decode())):
        t = datetime.fromisoformat(row[COLUMN]).replace(tzinfo=timezone.utc)
        e = completed(int(t.timestamp() * 1000))
        if e - BASE < 1000 or e >= end:
            continue
        due = start + (e - BASE) * 10 / rate
        latencies.append((at - due) * 1000)
latencies.sort()
n = len(latencies)
if n == 0:
    sys.exit(f"{q}: no results to measure")
pick = lambda p: latencies[min(n - 1, int(p * n))]
print(f"{q:<5} {n:>9} {pick(0.5):>9.0f} {pick(0.99):>9.0f} {latencies[-1]:>9.0f} {peak[0] / 2**20:>9.1f}")
PY
done
