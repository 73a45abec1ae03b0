#!/usr/bin/env bash
# How fast consumers drain a Redis list of pre-loaded events into /dev/null:
#
#   bench/tail.sh [events]        (default 1000000)
#
# On a fresh redis-server on a free loopback port, the same events are loaded before each run:
#   1. pixelpipe tail --json           (pops in batches: RPOP key N, BRPOP only when empty)
#   2. pixelpipe tail --reliable --json (moves batches to a processing list, acknowledges each)
#   3. the seed's Python consumer      (python3-redis, one BRPOP per event; bench/tail/seed_consumer.py)
# and prints events/s for each and the ratios. Needs: redis-server, redis-cli, python3-redis.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
py=/usr/bin/python3 # Debian's, where python3-redis is installed
for p in redis-server redis-cli; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install redis-server redis-tools" >&2; exit 1; }
done
$py -c 'import redis' 2>/dev/null || { echo "missing python3-redis: apt-get install python3-redis" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/pixelpipe
work=$(mktemp -d)
redis_pid=
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
$py bench/tail/preload.py "$n" >"$work/load.resp"

load() {
  redis-cli -p "$port" del pixel pixel:processing:bench >/dev/null
  redis-cli -p "$port" --pipe <"$work/load.resp" >/dev/null
  local len; len=$(redis-cli -p "$port" llen pixel)
  [ "$len" -eq "$n" ] || { echo "loaded $len events, not $n" >&2; exit 1; }
}

now() { date +%s.%N; }

drain() { # name, command… → prints events/s
  load
  local t0 t1
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  local left; left=$(redis-cli -p "$port" llen pixel)
  [ "$left" -eq 0 ] || { echo "$1 left $left events" >&2; exit 1; }
  awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}

url=redis://127.0.0.1:$port
json=$(drain $bin --redis "$url" tail --json --count "$n")
reliable=$(drain $bin --redis "$url" tail --reliable --consumer bench --json --count "$n")
python=$(drain $py bench/tail/seed_consumer.py "$port" "$n")

printf '%-36s %12s %8s\n' consumer events/s "x Python"
printf '%-36s %12s %8s\n' "pixelpipe tail --json" "$json" "$(awk -v a="$json" -v b="$python" 'BEGIN{printf "%.1f", a/b}')"
printf '%-36s %12s %8s\n' "pixelpipe tail --reliable --json" "$reliable" "$(awk -v a="$reliable" -v b="$python" 'BEGIN{printf "%.1f", a/b}')"
printf '%-36s %12s %8s\n' "seed consumer (Python 3, BRPOP loop)" "$python" "1.0"
echo "($n events of ~75 bytes, redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nproc) cores, loopback)"
