#!/usr/bin/env bash
# What the live analytics cost `pixelpipe serve`: the same wrk load (-t2 -c50) with
# `[analytics]` enabled and disabled, on a fresh redis-server each, and whether the
# aggregates counted every event that reached Redis.
#
#   bench/tail/analytics_overhead.sh [seconds]      (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
for p in wrk redis-server redis-cli; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install wrk redis-server redis-tools" >&2; exit 1; }
done
cargo build --release --quiet
bin=$PWD/target/release/pixelpipe
. bench/lib.sh
cat >"$work/pixelpipe.toml" <<TOML
[analytics]
params = ["utm_source", "variant"]
visitor = "uid"
ab_param = "variant"
goal = "event=signup"
TOML

run() { # enabled → prints "rps records counted"
  local dir=$work/$1 rport pport aport
  mkdir -p "$dir"
  rport=$(free_port) pport=$(free_port) aport=$(free_port)
  local redis_pid; start_redis "$rport" "$dir"
  PIXELPIPE_ANALYTICS__ENABLED=$1 $bin --config "$work/pixelpipe.toml" --redis "redis://127.0.0.1:$rport" \
    --data-dir "$dir/data" --admin-listen "127.0.0.1:$aport" serve --listen "127.0.0.1:$pport" 2>"$dir/log" &
  local ppid=$!; pids+=($ppid)
  wait_port "$pport"
  local rps
  rps=$(wrk -t2 -c50 -d"${secs}s" -s bench/tail/hits.lua "http://127.0.0.1:$pport/pixel.gif" | awk '/^Requests\/sec/ {print $2}')
  # Let the shipper and the aggregator catch up, then compare.
  local records=0 counted=0 prev=-1
  while [ "$records" != "$prev" ]; do prev=$records; sleep 1; records=$(redis-cli -p "$rport" llen pixel); done
  counted=$(redis-cli -p "$rport" get pixelpipe:stats:pixel:total)
  kill "$ppid" "$redis_pid"; wait "$ppid" "$redis_pid" 2>/dev/null || true
  echo "$rps $records ${counted:-0}"
}

# Not in a $(…) subshell: the cleanup trap must see the pids `run` starts.
run true >"$work/on"; read -r on_rps on_records on_counted <"$work/on"
run false >"$work/off"; read -r off_rps _ _ <"$work/off"
printf '%-28s %12s\n' "serve, analytics on" "$on_rps req/s"
printf '%-28s %12s\n' "serve, analytics off" "$off_rps req/s"
awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "ratio on/off: %.3f\n", a / b }'
echo "analytics counted $on_counted of $on_records events in Redis"
