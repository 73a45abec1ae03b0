#!/usr/bin/env bash
# Hit → in Redis → printed by `pixelpipe tail`, under open-loop paced load.
#
#   bench/latency.sh [seconds] [rates]        (defaults: 10 s, "1000 5000 20000")
#
# wrk runs a closed loop (a new request once an answer is back), which hides queueing;
# here bench/latency/paced.rs (std only, built with rustc; one thread driving all the
# connections) sends requests at a fixed rate whether answers came back or not, each
# carrying its send time in µs (`t=` in the query). In one run, one after the other, two
# setups each get a fresh redis-server:
#   1. pixelpipe serve as configured by default (the shipper ships as soon as it is idle)
#   2. the same with `ship.linger = "5ms"` (the shipper waits 5 ms after a partial batch);
#      or, with second_name=NAME second_env="VAR=VALUE…" in the environment, the default
#      with those settings (second_env=PIXELPIPE_SHIP__LINGER=0s: the default twice, to
#      see how much two runs of the same thing differ on this machine)
# For each rate, the time a record became visible in Redis is Redis's own clock from
# `redis-cli monitor` (the moment it ran the LPUSH), and the time `pixelpipe tail` printed
# it is stamped as its line is read; all on this machine's wall clock. Prints per setup
# and rate: p50/p99/p99.9 of hit → in Redis and hit → printed (ms, first 0.5 s left out),
# the answer latency the client saw, how often the client itself fell behind, and
# p50/p99/p99.9 of answered → in Redis (from the moment the client had its 200: the
# shipping alone, with the HTTP path and the client's own stalls left out).
#
# Needs: redis-server, redis-cli, rustc, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rates=${2:-1000 5000 20000}
conns=64
for p in redis-server redis-cli rustc python3 stdbuf; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install redis-server redis-tools coreutils python3 (rustc: rustup)" >&2; exit 1; }
done
cargo build --release --quiet
bin=$PWD/target/release/pixelpipe
. bench/lib.sh
rustc -O --edition 2021 -o "$work/paced" bench/latency/paced.rs

# One setup: $1 = name, then env assignments for pixelpipe. Prints its table rows.
run() {
  local name=$1 dir=$work/$1 rport pport
  shift
  mkdir -p "$dir"
  rport=$(free_port); pport=$(free_port)
  local redis_pid; start_redis "$rport" "$dir"
  env "$@" RUST_LOG=warn "$bin" --redis "redis://127.0.0.1:$rport" --data-dir "$dir/data" \
    --admin-listen "127.0.0.1:$(free_port)" serve --listen "127.0.0.1:$pport" 2>"$dir/serve.log" &
  local pp=$!; pids+=($pp)
  stdbuf -oL redis-cli -p "$rport" monitor >"$dir/monitor.log" &
  local mon=$!; pids+=($mon)
  mkfifo "$dir/printed"
  "$work/paced" stamp <"$dir/printed" >"$dir/tail.log" &
  local st=$!; pids+=($st)
  "$bin" --redis "redis://127.0.0.1:$rport" tail >"$dir/printed" 2>"$dir/tail.err" &
  local tl=$!; pids+=($tl)
  wait_port "$pport"
  local expected=0
  for rate in $rates; do
    echo "== $name: $rate req/s for $secs s" >&2
    "$work/paced" load "127.0.0.1:$pport" "$rate" "$secs" "$conns" "$rate" "$dir/answers-$rate" >"$dir/load-$rate"
    cat "$dir/load-$rate" >&2
    expected=$((expected + $(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$dir/load-$rate")))
    # Every answered hit must be printed before the next rate starts.
    for _ in $(seq 400); do
      [ "$(wc -l <"$dir/tail.log")" -ge "$expected" ] && break
      sleep 0.05
    done
  done
  kill "$pp" "$mon" "$tl" 2>/dev/null || true
  wait "$pp" "$mon" "$tl" "$st" 2>/dev/null || true # the stamper ends with tail's output
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true
  local printed; printed=$(wc -l <"$dir/tail.log")
  python3 bench/latency/analyze.py "$dir/monitor.log" "$dir/tail.log" 0.5 "$dir"/answers-* | while read -r rate n_redis r50 r99 r999 n_tail t50 t99 t999 _ s50 s99 s999; do
    local load; load=$(cat "$dir/load-$rate")
    local ok late a50 a99
    ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$load")
    late=$(sed -n 's/.*late_1ms=\([0-9]*\).*/\1/p' <<<"$load")
    a50=$(sed -n 's/.*answer_p50_us=\([0-9]*\).*/\1/p' <<<"$load")
    a99=$(sed -n 's/.*answer_p99_us=\([0-9]*\).*/\1/p' <<<"$load")
    printf '%-16s %7s %8s %8s %7s %7s %8s %7s %7s %8s %9s %9s %8s %7s %7s %8s\n' "$name" "$rate" "$ok" "$n_tail" \
      "$r50" "$r99" "$r999" "$t50" "$t99" "$t999" "$a50" "$a99" "$late" "$s50" "$s99" "$s999"
  done
  echo "($name: $printed lines printed by tail in all)" >&2
}

header() {
  printf '%-16s %7s %8s %8s %7s %7s %8s %7s %7s %8s %9s %9s %8s %7s %7s %8s\n' setup req/s "200s" printed \
    "R p50" "R p99" "R p99.9" "T p50" "T p99" "T p99.9" "ans p50µs" "ans p99µs" "late>1ms" "S p50" "S p99" "S p99.9"
}

run default >"$work/default.rows"
run "${second_name:-linger-5ms}" ${second_env:-PIXELPIPE_SHIP__LINGER=5ms} >"$work/linger.rows"
echo
echo "== results: open-loop paced load, $secs s per rate, $conns keep-alive connections, $(nproc) cores shared by client, server, Redis and tail"
echo "   R = hit sent → LPUSH run by Redis, T = hit sent → printed by pixelpipe tail (ms); ans = answer latency seen by the client"
echo "   S = answer received by the client → LPUSH run by Redis (ms): the shipping alone, after the hit was answered"
header
cat "$work/default.rows" "$work/linger.rows"
