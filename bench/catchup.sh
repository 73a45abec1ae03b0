#!/usr/bin/env bash
# Catching up after a Redis outage under load, against redis-benchmark's LPUSH ceiling.
#
#   bench/catchup.sh [outage-seconds] [normal-seconds] [paced-rate]   (defaults: 60, 10, auto)
#
# Two cases, one after the other, each with a fresh pixelpipe serve (defaults) shipping to
# a fresh redis-server on a free loopback port:
#   1. saturated: `wrk -t2 -c50` (closed loop) from start to end: every core is busy, so
#      whatever the drain costs is taken from serving;
#   2. paced: bench/latency/paced.rs sends hits at a fixed rate (open loop, 64 keep-alive
#      connections) — by default half the rate case 1 served before its outage — and
#      logs each answer, so the answer latency is known per phase.
# In each: after `normal` seconds Redis is stopped (SHUTDOWN SAVE: the list and the
# shipped position survive, as with a persistent Redis), hits keep being answered into
# the local log for `outage` seconds, then Redis is started again on the same data.
# /metrics is sampled every 50 ms (bench/catchup/sample.py). Printed per case: the backlog
# when Redis came back, how long until shipping resumed (reconnect backoff), the drain
# rate (records shipped per second from the first shipped batch until less than 64 KiB is
# left, new hits included), the ceiling measured in the same run — redis-benchmark, one
# connection like the shipper, LPUSH of one batch of the shipper's size (ship.batch_records,
# or fewer if ship.batch_bytes binds first) of a real record per command, on the same
# Redis — and the hits served per second before the outage and during the drain; in case
# 2 also the answer latency p50/p99 before the outage and during the drain.
#
# CATCHUP_NICE=N: what a drain that yields to serving would give: pixelpipe's threads but
# its HTTP workers (the shipper, the live analytics, the admin listener) and Redis run
# at nice N.
#
# Needs: wrk, redis-server, redis-cli, redis-benchmark, python3, rustc.
set -euo pipefail
cd "$(dirname "$0")/.."
outage=${1:-60}
normal=${2:-10}
rate=${3:-auto}
batch_records=5000       # ship.batch_records' default
batch_bytes=$((4 << 20)) # ship.batch_bytes' default
for p in wrk redis-server redis-cli redis-benchmark python3 rustc; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install wrk redis-server redis-tools python3 (rustc: rustup)" >&2; exit 1; }
done
cargo build --release --quiet
bin=$PWD/target/release/pixelpipe
. bench/lib.sh
rustc -O --edition 2021 -o "$work/paced" bench/latency/paced.rs
now() { date +%s.%N; }

# One case: $1 = name, $2 = "wrk" or a paced rate. Prints its results; leaves the rate
# results in $work/case-$1/results.
run() {
  local name=$1 load=$2 dir=$work/case-$1
  mkdir -p "$dir"
  local rport pport aport redis_pid pids_before=${#pids[@]}
  rport=$(free_port); pport=$(free_port); aport=$(free_port)
  redis_up() {
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --dbfilename dump.rdb >>"$dir/redis.log" 2>&1 &
    redis_pid=$!; pids+=($redis_pid)
    until [ "$(redis-cli -p "$rport" PING 2>/dev/null)" = PONG ]; do sleep 0.01; done
    [ -z "${CATCHUP_NICE:-}" ] || renice -n "$CATCHUP_NICE" -p "$redis_pid" >/dev/null
  }
  redis_up
  RUST_LOG=warn "$bin" --redis "redis://127.0.0.1:$rport" --data-dir "$dir/data" --admin-listen "127.0.0.1:$aport" \
    serve --listen "127.0.0.1:$pport" 2>"$dir/serve.log" &
  local pp=$!; pids+=($pp)
  wait_port "$pport"; wait_port "$aport"
  # Every thread but the HTTP workers; threads started later inherit the main thread's nice.
  if [ -n "${CATCHUP_NICE:-}" ]; then
    local task
    for task in /proc/"$pp"/task/*; do
      case $(cat "$task/comm") in http-*) ;; *) renice -n "$CATCHUP_NICE" -p "${task##*/}" >/dev/null ;; esac
    done
  fi
  python3 bench/catchup/sample.py "$aport" >"$dir/samples" &
  local sampler=$!; pids+=($sampler)
  local load_pid answers=""
  if [ "$load" = wrk ]; then
    wrk -t2 -c50 -d"$((normal + outage + 600))s" -s bench/unique-ids.lua "http://127.0.0.1:$pport/pixel.gif" >"$dir/load.log" 2>&1 &
    load_pid=$!
  else
    # Open loop for a fixed time: the outage, then at least 30 s for the drain.
    answers=$dir/answers
    "$work/paced" load "127.0.0.1:$pport" "$load" "$((normal + outage + 30))" 64 "$load" "$answers" >"$dir/load.log" &
    load_pid=$!
  fi
  pids+=($load_pid)
  echo "normal $(now)" >"$dir/marks"
  echo "== $name: load on, Redis up for $normal s" >&2
  sleep "$normal"
  echo "down $(now)" >>"$dir/marks"
  redis-cli -p "$rport" SHUTDOWN SAVE >/dev/null 2>&1 || true
  wait "$redis_pid" 2>/dev/null || true
  echo "== $name: Redis down for $outage s" >&2
  sleep "$outage"
  redis_up
  echo "up $(now)" >>"$dir/marks"
  echo "== $name: Redis up again; waiting for the backlog to drain" >&2
  backlog() { curl -s "http://127.0.0.1:$aport/metrics" | awk '/^pixelpipe_backlog_bytes / {print int($2)}'; }
  for _ in $(seq 6000); do
    [ "$(backlog)" -lt 65536 ] && break
    sleep 0.1
  done
  sleep 1
  if [ "$load" = wrk ]; then
    kill "$load_pid" 2>/dev/null || true
  else
    echo "== $name: waiting for the paced load to end" >&2
  fi
  wait "$load_pid" 2>/dev/null || true
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true

  # The ceiling: one connection pushing batches of a real record of this run.
  local value batch args=()
  value=$(redis-cli -p "$rport" LINDEX pixel 0)
  batch=$((batch_bytes / (${#value} + 12) < batch_records ? batch_bytes / (${#value} + 12) : batch_records))
  for _ in $(seq "$batch"); do args+=("$value"); done
  local ceiling_cmds
  ceiling_cmds=$(redis-benchmark -p "$rport" -c 1 -n 200 --csv LPUSH catchup:ceiling "${args[@]}" |
    python3 -c 'import csv, sys; csv.field_size_limit(1 << 30); print(list(csv.reader(sys.stdin))[-1][1])')
  redis-cli -p "$rport" DEL catchup:ceiling >/dev/null
  kill "$pp" "$redis_pid" 2>/dev/null || true; wait "$pp" "$redis_pid" 2>/dev/null || true
  pids=("${pids[@]:0:$pids_before}")
  echo
  if [ "$load" = wrk ]; then
    echo "== $name: wrk -t2 -c50 throughout, Redis down $outage s, $(nproc) cores shared by wrk, pixelpipe and Redis"
  else
    echo "== $name: $load hits/s open loop (paced.rs, 64 connections) throughout, Redis down $outage s, $(nproc) cores shared by the client, pixelpipe and Redis"
    sed 's/^/client: /' "$dir/load.log"
  fi
  python3 bench/catchup/analyze.py "$dir/samples" "$dir/marks" "$ceiling_cmds" "$batch" "${#value}" $answers |
    tee "$dir/results"
}

run saturated wrk
if [ "$rate" = auto ]; then
  rate=$(awk '/^served hits\/s before the outage/ {print int($6 / 2)}' "$work/case-saturated/results")
fi
run paced "$rate"
