#!/usr/bin/env bash
# pixelpipe relay against Debian's syslog-ng, side by side, each fed by Debian's loggen.
#
#   bench/relay.sh [seconds] [message-size]        (defaults: 10 s, 256 bytes)
#
# For TCP (`loggen -i -S`), then UDP (`loggen -i -D`), as fast as loggen sends, runs:
#   1. syslog-ng with its native redis() destination, batch-lines(100), workers(2)
#   2. pixelpipe relay (through its durable local log and exactly-once shipper)
# each into a fresh redis-server of its own, both routing every message to
# LPUSH ${PROGRAM} ${MESSAGE}. Prints, for each: messages loggen sent, records that
# reached Redis, delivered messages/s (from the first send to the last record landing in
# Redis), the delivered fraction, the relay/syslog-ng ratio, and each one's peak RSS.
#
# Needs: syslog-ng (syslog-ng-core), its redis module (syslog-ng-mod-redis), loggen,
# redis-server, redis-cli, python3. Missing Debian packages are installed when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
size=${2:-256}
export PATH=$PATH:/usr/sbin:/sbin

need=()
for pair in syslog-ng:syslog-ng-core loggen:syslog-ng-core redis-server:redis-server redis-cli:redis-tools python3:python3; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
ls /usr/lib/syslog-ng/*/libredis.so >/dev/null 2>&1 || need+=(syslog-ng-mod-redis)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then echo "missing: sudo apt-get install ${need[*]}" >&2; exit 1; fi
  echo "installing: ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release --quiet
bin=target/release/pixelpipe
. bench/lib.sh
now() { date +%s.%N; }
# Records in every list loggen's messages went to (the key is the program, prg00000…).
records() { redis-cli -p "$1" EVAL "local n=0 for _,k in ipairs(redis.call('KEYS','prg*')) do n=n+redis.call('LLEN',k) end return n" 0; }

# One run: $1 = syslog-ng | relay, $2 = tcp | udp. Prints "sent records rate fraction rss_mib".
run() {
  local who=$1 proto=$2 dir=$work/$1-$2 rport port pid
  mkdir -p "$dir"
  rport=$(free_port); port=$(free_port)
  local redis_pid; start_redis "$rport" "$dir"
  if [ "$who" = syslog-ng ]; then
    cat >"$dir/syslog-ng.conf" <<CONF
@version: 3.38
options { threaded(yes); keep-hostname(yes); stats-freq(0); };
source s_net { network(transport("$proto") ip("127.0.0.1") port($port) max-connections(100)); };
destination d_redis {
  redis(host("127.0.0.1") port($rport) command("LPUSH", "\${PROGRAM}", "\${MESSAGE}") batch-lines(100) workers(2));
};
log { source(s_net); destination(d_redis); };
CONF
    syslog-ng -F --no-caps -f "$dir/syslog-ng.conf" -R "$dir/persist" -c "$dir/ctl" -p "$dir/pid" >"$dir/out.log" 2>&1 & pid=$!
  else
    cat >"$dir/relay.toml" <<CONF
[[relay.routes]]
destination = { redis = { key = "\${PROGRAM}", value = "\${MESSAGE}" } }
CONF
    RUST_LOG=warn $bin --config "$dir/relay.toml" --redis "redis://127.0.0.1:$rport" --data-dir "$dir/data" \
      --admin-listen "127.0.0.1:$(free_port)" relay "--$proto" "127.0.0.1:$port" >"$dir/out.log" 2>&1 & pid=$!
  fi
  pids+=($pid)
  if [ "$proto" = tcp ]; then wait_port "$port"; else sleep 1; fi
  local flag=-S; [ "$proto" = udp ] && flag=-D
  local start; start=$(now)
  loggen -i $flag -s "$size" -I "$secs" -r 1000000000 127.0.0.1 "$port" >"$dir/loggen.log" 2>&1 || true
  local sent; sent=$(sed -n 's/.*count=\([0-9]*\).*/\1/p' "$dir/loggen.log" | tail -1)
  # The last record has landed once the count stops moving for 2 s (or all arrived).
  local n=-1 last_change; last_change=$(now)
  local stable=0
  while [ $stable -lt 40 ]; do
    local m; m=$(records "$rport")
    if [ "$m" != "$n" ]; then n=$m; last_change=$(now); stable=0; else stable=$((stable + 1)); fi
    [ "$n" -ge "$sent" ] && break
    sleep 0.05
  done
  local rss_kb; rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid" "$redis_pid" 2>/dev/null || true; wait "$pid" "$redis_pid" 2>/dev/null || true
  python3 -c "
sent, n, t = $sent, $n, $last_change - $start
print(sent, n, int(n / t), f'{100 * n / max(sent, 1):.1f}', $rss_kb // 1024)"
}

declare -A r
for proto in tcp udp; do
  for who in syslog-ng relay; do
    echo "== $who, $proto (loggen -i $([ $proto = tcp ] && echo -S || echo -D) -s $size -I $secs)" >&2
    # Not in a $(…) subshell: the cleanup trap must see the pids `run` starts.
    run "$who" "$proto" >"$work/result"
    r[$who-$proto]=$(cat "$work/result")
    echo "   ${r[$who-$proto]}" >&2
  done
done

echo
echo "== results: loggen as fast as it sends, ${size}-byte messages, ${secs} s, $(nproc) cores shared by loggen, relay and Redis"
printf '%-24s %10s %10s %14s %10s %9s\n' setup sent "in Redis" "delivered/s" delivered "peak RSS"
for proto in tcp udp; do
  for who in syslog-ng relay; do
    read -r sent n rate frac rss <<<"${r[$who-$proto]}"
    printf '%-24s %10s %10s %14s %9s%% %6s MiB\n' "$who $proto" "$sent" "$n" "$rate" "$frac" "$rss"
  done
done
read -r _ _ sng_tcp _ _ <<<"${r[syslog-ng-tcp]}"
read -r _ _ pp_tcp _ _ <<<"${r[relay-tcp]}"
read -r _ _ _ sng_udp_frac _ <<<"${r[syslog-ng-udp]}"
read -r _ _ _ pp_udp_frac _ <<<"${r[relay-udp]}"
echo
echo "TCP delivered msg/s, relay / syslog-ng: $(python3 -c "print(f'{$pp_tcp/max($sng_tcp,1):.2f}x')")"
echo "UDP delivered fraction: relay $pp_udp_frac % vs syslog-ng $sng_udp_frac %"
