#!/usr/bin/env bash
# The drain alone, without load: what one record costs the shipper and Redis.
#
#   bench/catchup/idle_drain.sh [load-seconds] [binary]     (defaults: 15, target/release/pixelpipe)
#
# pixelpipe serve starts with no Redis listening; `wrk -t2 -c50` fills the local log for
# `load-seconds`; then the load stops, redis-server starts and the backlog drains with
# nothing else running. Prints the drain rate (first shipped batch to an empty backlog,
# /metrics polled every 20 ms), and the CPU time per record of pixelpipe (the shipper and
# the live analytics of each shipped batch) and of Redis (the ship script, and the
# analytics' counters). Set PIXELPIPE_ANALYTICS__ENABLED=false to leave the analytics out.
#
# Needs: wrk, redis-server, redis-cli, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
bin=${2:-$PWD/target/release/pixelpipe}
[ -n "${2:-}" ] || cargo build --release --quiet
. bench/lib.sh
rport=$(free_port); pport=$(free_port); aport=$(free_port)
RUST_LOG=warn "$bin" --redis "redis://127.0.0.1:$rport" --data-dir "$work/data" --admin-listen "127.0.0.1:$aport" \
  serve --listen "127.0.0.1:$pport" 2>"$work/serve.log" &
pp=$!; pids+=($pp)
wait_port "$pport"; wait_port "$aport"
wrk -t2 -c50 -d"${secs}s" -s bench/unique-ids.lua "http://127.0.0.1:$pport/pixel.gif" >/dev/null 2>&1
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v n="$1" '$1 == n {print int($2)}'; }
echo "backlog: $(metric pixelpipe_http_hits_total) records, $(metric pixelpipe_backlog_bytes) bytes" >&2
start_redis "$rport" "$work"
up=$(date +%s.%N)
while [ "$(metric pixelpipe_shipped_records_total)" = 0 ]; do sleep 0.02; done
t0=$(date +%s.%N); c0=$(ticks "$pp")
until [ "$(metric pixelpipe_backlog_bytes)" -lt 1 ]; do sleep 0.02; done
t1=$(date +%s.%N)
n=$(metric pixelpipe_shipped_records_total)
# The live analytics count on a thread of their own, and may finish a little later: the
# CPU is counted until they have (or dropped what they could not take).
if [ "${PIXELPIPE_ANALYTICS__ENABLED:-true}" != false ]; then
  for _ in $(seq 250); do
    [ "$(metric pixelpipe_analytics_events_total)" = "$n" ] && break
    [ -n "$(metric pixelpipe_analytics_dropped_batches_total)" ] && break
    sleep 0.02
  done
  echo "analytics: $(metric pixelpipe_analytics_events_total) records counted, $(metric pixelpipe_analytics_dropped_batches_total | grep . || echo 0) batches dropped" >&2
fi
c1=$(ticks "$pp")
redis_cpu=$(redis-cli -p "$rport" INFO cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {print s}')
[ "$(redis-cli -p "$rport" LLEN pixel)" = "$n" ] || echo "LLEN pixel is not $n" >&2
python3 -c "
n, t = $n, $t1 - $t0
print(f'first batch {$t0 - $up:.2f} s after Redis answered; {n:,} records drained in {t:.2f} s = {n / t:,.0f} records/s')
print(f'CPU per record: pixelpipe {($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / n:.2f} us, Redis {$redis_cpu * 1e6 / n:.2f} us')"
