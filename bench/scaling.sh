#!/usr/bin/env bash
# How fast one collector's shipper delivers, by sink, side by side in one run:
#
#   bench/scaling.sh [seconds]          (default 5: seconds of wrk load that fill the log)
#
# For each setup, on free loopback ports:
#   1. `pixelpipe serve` starts with its Redis not yet there, and `wrk -t2 -c50` fills its
#      local log for <seconds> (unique id per request);
#   2. then Redis starts and the shipper drains the backlog; we time the drain from Redis
#      being up to the last record in it, and count the CPU that pixelpipe and the Redis
#      server(s) used meanwhile.
# Setups: the list sink on one redis-server (the default), a stream (`ship.sink = "stream"`)
# on one redis-server, and a 3-master Redis Cluster (no replicas) with `ship.shards = 3`,
# as a list and as a stream; last, the cluster stream with 3 replicas and
# `ship.wait_replicas = 1`.
# Prints per setup: events, drain seconds, events/s delivered, CPU µs per event (pixelpipe,
# Redis), and the duplicates found (ids seen twice). Needs: wrk, redis-server, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
for p in wrk redis-server redis-cli; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install wrk redis-server redis-tools" >&2; exit 1; }
done
# BENCH_BINARY: a binary built before (skips the build).
[ -n "${BENCH_BINARY:-}" ] || cargo build --release --quiet
bin=${BENCH_BINARY:-$PWD/target/release/pixelpipe}
. bench/lib.sh
hz=$(getconf CLK_TCK)
# The machine may be busy: wait up to a minute for a port.
wait_long() { for _ in $(seq 1200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

ticks() { # pids… → user+system CPU ticks so far
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
# A cluster port: free, and free at +10000 (the cluster bus).
cluster_port() { while :; do local p; p=$(free_port); ((p < 55000)) && ! (exec 3<>/dev/tcp/127.0.0.1/$((p + 10000))) 2>/dev/null && { echo "$p"; return; }; done; }

# count kind ports… → records in pixel (list or stream; all shards on a cluster)
count() {
  local kind=$1; shift
  local n=0 p k c
  for p in "$@"; do
    for k in pixel 'pixel:{0}' 'pixel:{1}' 'pixel:{2}'; do
      # Only a key's own master answers for it; others say MOVED (ignored).
      if [ "$kind" = list ]; then c=$(redis-cli -p "$p" LLEN "$k" 2>/dev/null); else c=$(redis-cli -p "$p" XLEN "$k" 2>/dev/null); fi
      [[ $c =~ ^[0-9]+$ ]] && n=$((n + c))
    done
  done
  echo "$n"
}
# dups kind ports… → ids present more than once
dups() {
  local kind=$1; shift
  local p k
  for p in "$@"; do
    for k in pixel 'pixel:{0}' 'pixel:{1}' 'pixel:{2}'; do
      if [ "$kind" = list ]; then redis-cli -p "$p" --raw LRANGE "$k" 0 -1 2>/dev/null
      else redis-cli -p "$p" --raw XRANGE "$k" - + 2>/dev/null; fi
    done
  done | grep -o 'id=[0-9]*-[0-9]*' | sort | uniq -d | wc -l
}

# run name kind topology(single|cluster|cluster-replicas) [env…]
run() {
  local name=$1 kind=$2 topo=$3; shift 3
  local dir=$work/$name pport aport rport url
  mkdir -p "$dir"
  pport=$(free_port); aport=$(free_port)
  if [ "$topo" = single ]; then rport=$(free_port); url="redis://127.0.0.1:$rport"
  else
    # The cluster's ports are chosen now, so that the collector can be pointed at them.
    local ports=() i; for i in 1 2 3; do ports+=("$(cluster_port)"); done
    url="redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
  fi
  env "$@" PIXELPIPE_SHIP__SINK="$kind" PIXELPIPE_ANALYTICS__ENABLED=false RUST_LOG=warn \
    "$bin" --redis "$url" --data-dir "$dir/data" --admin-listen "127.0.0.1:$aport" \
    serve --listen "127.0.0.1:$pport" 2>"$dir/pp.log" &
  local pp=$!; pids+=($pp)
  wait_long "$pport" || { cat "$dir/pp.log" >&2; return 1; }
  local out req non2xx events
  out=$(wrk -t2 -c50 -d"${secs}s" -s bench/unique-ids.lua "http://127.0.0.1:$pport/pixel.gif" 2>&1)
  req=$(sed -n 's/.*WRK_RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
  non2xx=$(sed -n 's/.*non2xx=\([0-9]*\).*/\1/p' <<<"$out")
  events=$((req - non2xx))
  # What an outage costs on disk: the local log's bytes per event, before any is shipped.
  local log_bytes; log_bytes=$(du -sb "$dir/data/log" | cut -f1)
  local before_pp before_redis redis_pids=() count_ports=() t0
  if [ "$topo" = single ]; then
    start_redis "$rport" "$dir"; redis_pids=("$redis_pid"); count_ports=("$rport")
  else
    local r=0; [ "$topo" = cluster-replicas ] && r=1
    # The first three ports were promised to the collector: start those nodes first.
    cluster_pids=(); cluster_ports=()
    local p; for p in "${ports[@]}"; do mkdir -p "$dir/$p"
      redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 2000 --save '' --appendonly no --dir "$dir/$p" >/dev/null 2>&1 &
      cluster_pids+=($!); pids+=($!); cluster_ports+=("$p"); done
    for i in $(seq $((3 * r))); do p=$(cluster_port); mkdir -p "$dir/$p"
      redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 2000 --save '' --appendonly no --dir "$dir/$p" >/dev/null 2>&1 &
      cluster_pids+=($!); pids+=($!); cluster_ports+=("$p"); done
    for p in "${cluster_ports[@]}"; do wait_long "$p"; done
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas "$r" --cluster-yes >/dev/null
    redis_pids=("${cluster_pids[@]}"); count_ports=("${cluster_ports[@]}")
  fi
  # Timed from the first record in Redis (the cluster's creation is not the sink's cost).
  local n=0
  until [ "$n" -gt 0 ]; do sleep 0.02; n=$(count "$kind" "${count_ports[@]}"); done
  t0=$(date +%s.%N); before_pp=$(ticks "$pp"); before_redis=$(ticks "${redis_pids[@]}")
  until [ "$n" -ge "$events" ]; do sleep 0.1; n=$(count "$kind" "${count_ports[@]}"); done
  local t1 pp_ticks redis_ticks
  t1=$(date +%s.%N)
  pp_ticks=$(( $(ticks "$pp") - before_pp ))
  redis_ticks=$(( $(ticks "${redis_pids[@]}") - before_redis ))
  local d; d=$(dups "$kind" "${count_ports[@]}")
  kill "$pp" 2>/dev/null; wait "$pp" 2>/dev/null || true
  # One consumer of a stream on one server: how fast `tail --stream` drains it.
  local tail_rate=-
  if [ "$kind" = stream ] && [ "$topo" = single ]; then
    local s0 s1
    s0=$(date +%s.%N)
    "$bin" --redis "$url" tail --stream --group bench --consumer c1 --json --count "$n" >/dev/null 2>"$dir/tail.log"
    s1=$(date +%s.%N)
    tail_rate=$(python3 -c "print(f'{$n/($s1-$s0):,.0f}')")
  fi
  kill "${redis_pids[@]}" 2>/dev/null; wait "${redis_pids[@]}" 2>/dev/null || true
  python3 - "$name" "$events" "$t0" "$t1" "$pp_ticks" "$redis_ticks" "$hz" "$d" "$n" "$log_bytes" "$tail_rate" <<'PY'
import sys
name, events, t0, t1, pp, rd, hz, dups, n, log_bytes, tail_rate = sys.argv[1:]
events, secs = int(events), float(t1) - float(t0)
pp_us = int(pp) * 1e6 / int(hz) / max(events, 1)
rd_us = int(rd) * 1e6 / int(hz) / max(events, 1)
per_event = int(log_bytes) / max(events, 1)
print(f"{name:<28} {events:>9} {secs:>8.2f} {events/secs:>12,.0f} {pp_us:>10.2f} {rd_us:>11.2f} {int(n)-events:>6} {dups:>5} {per_event:>8.1f} {tail_rate:>10}")
PY
}

printf '%-28s %9s %8s %12s %10s %11s %6s %5s %8s %10s\n' setup events drain_s "events/s" "pp µs/ev" "redis µs/ev" extra dups "log B/ev" "tail ev/s"
run "list, 1 redis" list single
run "stream, 1 redis" stream single
run "list, cluster 3 shards" list cluster PIXELPIPE_SHIP__SHARDS=3
run "stream, cluster 3 shards" stream cluster PIXELPIPE_SHIP__SHARDS=3
run "stream, 3 shards, WAIT 1" stream cluster-replicas PIXELPIPE_SHIP__SHARDS=3 PIXELPIPE_SHIP__WAIT_REPLICAS=1
echo
echo "(drain: from the first record in Redis to the last; extra: records beyond wrk's 200s, i.e."
echo " hits answered after wrk stopped counting; $(nproc) cores shared by pixelpipe and every"
echo " redis-server; one run)"
