#!/usr/bin/env bash
# Catching up after a Redis outage under load, against redis-benchmark's LPUSH ceiling.
#
#   bench/catchup.sh [outage-seconds] [normal-seconds]        (defaults: 60, 10)
#
# pixelpipe serve (defaults) ships to a redis-server on a free loopback port, under
# `wrk -t2 -c50` from start to end. After `normal` seconds Redis is stopped
# (SHUTDOWN SAVE: the list and the shipped position survive, as with a persistent Redis),
# hits keep being answered into the local log for `outage` seconds, then Redis is started
# again on the same data. /metrics is sampled every 50 ms (bench/catchup/sample.py).
# Prints: the serving rate before the outage, during it, and while the backlog drains;
# the drain rate (records shipped per second from the first shipped batch until less than
# 64 KiB is left, new hits included); and the ceiling in the same run: redis-benchmark,
# one connection like the shipper, LPUSH of the shipper's batch size (ship.batch_records)
# of record-sized values per command, on the same Redis.
#
# Needs: wrk, redis-server, redis-cli, redis-benchmark, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
outage=${1:-60}
normal=${2:-10}
batch=5000 # ship.batch_records' default
for p in wrk redis-server redis-cli redis-benchmark python3; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install wrk redis-server redis-tools python3" >&2; exit 1; }
done
cargo build --release --quiet
bin=$PWD/target/release/pixelpipe
. bench/lib.sh
now() { date +%s.%N; }

rport=$(free_port); pport=$(free_port); aport=$(free_port)
redis_up() {
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --dbfilename dump.rdb >>"$work/redis.log" 2>&1 &
  redis_pid=$!; pids+=($redis_pid)
  until [ "$(redis-cli -p "$rport" PING 2>/dev/null)" = PONG ]; do sleep 0.01; done
}
redis_up
RUST_LOG=warn "$bin" --redis "redis://127.0.0.1:$rport" --data-dir "$work/data" --admin-listen "127.0.0.1:$aport" \
  serve --listen "127.0.0.1:$pport" 2>"$work/serve.log" &
pp=$!; pids+=($pp)
wait_port "$pport"; wait_port "$aport"
python3 bench/catchup/sample.py "$aport" >"$work/samples" &
pids+=($!)

max=$((normal + outage + 600))
wrk -t2 -c50 -d"${max}s" -s bench/unique-ids.lua "http://127.0.0.1:$pport/pixel.gif" >"$work/wrk.log" 2>&1 &
wrk_pid=$!; pids+=($wrk_pid)
echo "normal $(now)" >"$work/marks"
echo "== load on, Redis up for $normal s" >&2
sleep "$normal"
echo "down $(now)" >>"$work/marks"
redis-cli -p "$rport" SHUTDOWN SAVE >/dev/null 2>&1 || true
wait "$redis_pid" 2>/dev/null || true
echo "== Redis down for $outage s" >&2
sleep "$outage"
redis_up
echo "up $(now)" >>"$work/marks"
echo "== Redis up again; waiting for the backlog to drain" >&2
backlog() { curl -s "http://127.0.0.1:$aport/metrics" | awk '/^pixelpipe_backlog_bytes / {print int($2)}'; }
for _ in $(seq 6000); do
  [ "$(backlog)" -lt 65536 ] && break
  sleep 0.1
done
sleep 1
kill "$wrk_pid" 2>/dev/null || true; wait "$wrk_pid" 2>/dev/null || true
read -r normal_rps outage_rps drain_rps serving_rps drain_s reconnect_s backlog_n < <(python3 bench/catchup/analyze.py "$work/samples" "$work/marks")

# The ceiling: one connection pushing batches of record-sized values.
value=$(printf '1795811017.123,id=1-%06d&utm_source=bench' 0)
args=(); for _ in $(seq "$batch"); do args+=("$value"); done
ceiling_cmds=$(redis-benchmark -p "$rport" -c 1 -n 200 --csv LPUSH catchup:ceiling "${args[@]}" |
  python3 -c 'import csv, sys; csv.field_size_limit(1 << 30); print(list(csv.reader(sys.stdin))[-1][1])')
redis-cli -p "$rport" DEL catchup:ceiling >/dev/null
ceiling=$(python3 -c "print(int($ceiling_cmds * $batch))")

echo
echo "== results: wrk -t2 -c50 throughout, Redis down $outage s, $(nproc) cores shared by wrk, pixelpipe and Redis"
echo "backlog when Redis came back: $backlog_n records; shipping resumed ${reconnect_s} s after Redis answered (reconnect backoff)"
echo "drain: $drain_rps records/s for ${drain_s} s (new hits included)"
echo "redis-benchmark ceiling, 1 connection, LPUSH of $batch values a command: $ceiling records/s ($ceiling_cmds commands/s)"
echo "drain / ceiling: $(python3 -c "print(f'{$drain_rps / max($ceiling, 1):.2f}')")"
echo "served hits/s: before the outage $normal_rps, during it $outage_rps, during the drain $serving_rps" \
  "($(python3 -c "print(f'{100 * $serving_rps / max($normal_rps, 1):.0f}')") % of before)"
