#!/usr/bin/env bash
# Where `serve`'s CPU per hit goes, thread by thread, and an A/B of two builds.
#
#   bench/threads.sh [seconds] [pairs] [binary A] [binary B]
#       (defaults: 12 s, 3 pairs, target/release/pixelpipe for both)
#
# Runs `pixelpipe serve` (defaults: live analytics on) shipping to a fresh redis-server,
# under `wrk -t2 -c50` with a unique id per request and a browser's user agent, `pairs`
# times each build, interleaved (A, B, A, B, …: a slow moment of the machine does not
# favour one build). For each run it reads every thread's user + system CPU time
# (/proc/<pid>/task/*/stat) before and after, and prints µs per request for each thread
# (`http-N`: the HTTP workers; the process's name: the main runtime — shipper, admin;
# `analytics`; `log-sync`; `redis-server`), their total and requests/s; then the mean
# total and requests/s of each build. A difference smaller than the spread of one
# build's runs is not one.
#
# Needs: wrk, redis-server, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-12}
pairs=${2:-3}
for p in wrk redis-server redis-cli; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install wrk redis-server redis-tools" >&2; exit 1; }
done
[ -n "${3:-}" ] || cargo build --release --quiet
a=$(realpath "${3:-target/release/pixelpipe}")
b=$(realpath "${4:-$a}")
. bench/lib.sh
ua='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'

# "thread-name ticks" for every thread of the given processes (redis-server as one).
snap() { # serve pid, redis pid
  local t
  for t in /proc/"$1"/task/*; do echo "$(cat "$t/comm" | tr ' ' _) $(awk '{print $14 + $15}' "$t/stat")"; done
  echo "redis-server $(awk '{print $14 + $15}' "/proc/$2/stat")"
}

run() { # label, binary → per-thread lines, then "total <µs> rps <n>"
  local rport pport
  rport=$(free_port); pport=$(free_port)
  local redis_pid; start_redis "$rport" "$work"
  RUST_LOG=warn "$2" --redis "redis://127.0.0.1:$rport" --data-dir "$work/data-$1" \
    --admin-listen "127.0.0.1:$(free_port)" serve --listen "127.0.0.1:$pport" 2>"$work/serve-$1.log" &
  local pp=$!; pids+=($pp)
  wait_port "$pport"
  snap "$pp" "$redis_pid" >"$work/before"
  local out req rps
  out=$(wrk -t2 -c50 -d"${secs}s" -H "User-Agent: $ua" -s bench/unique-ids.lua "http://127.0.0.1:$pport/pixel.gif" 2>&1)
  # Until the last record is in Redis: the shipping of the last hits counts too.
  local last=-1 n
  for _ in $(seq 100); do
    n=$(redis-cli -p "$rport" LLEN pixel)
    [ "$n" = "$last" ] && break; last=$n; sleep 0.1
  done
  snap "$pp" "$redis_pid" >"$work/after"
  kill "$pp" "$redis_pid"; wait "$pp" "$redis_pid" 2>/dev/null || true
  req=$(sed -n 's/.*WRK_RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  awk -v r="$req" -v hz="$(getconf CLK_TCK)" -v rps="$rps" '
    FNR == NR { before[$1] += $2; next }
    { used[$1] += $2 - before[$1] }
    END {
      for (t in used) if (used[t] > 0) { printf "  %-14s %6.2f µs/req\n", t, used[t] * 1e6 / hz / r; total += used[t] }
      printf "total %.2f rps %s\n", total * 1e6 / hz / r, rps
    }' "$work/before" "$work/after"
}

declare -A sum_us sum_rps
for i in $(seq "$pairs"); do
  for build in A B; do
    bin=$a; [ $build = B ] && bin=$b
    out=$(run "$build$i" "$bin")
    grep -v '^total' <<<"$out" | sort
    read -r _ us _ rps < <(grep '^total' <<<"$out")
    echo "$build, run $i: $us µs per request (serve + Redis), $rps requests/s"
    sum_us[$build]=$(python3 -c "print(${sum_us[$build]:-0} + $us)")
    sum_rps[$build]=$(python3 -c "print(${sum_rps[$build]:-0} + $rps)")
  done
done
echo
echo "== A = $a"
echo "== B = $b"
for build in A B; do
  python3 -c "print(f'$build: mean {${sum_us[$build]} / $pairs:.2f} µs per request, {${sum_rps[$build]} / $pairs:,.0f} requests/s over $pairs runs of ${secs} s')"
done
