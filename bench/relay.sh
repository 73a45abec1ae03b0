#!/usr/bin/env bash
# pixelpipe relay against Debian's syslog-ng and rsyslog, side by side in one run, each fed
# by syslog-ng's loggen.
#
#   bench/relay.sh [seconds] [message-size] [cases]
#       (defaults: 10 s, 256 bytes, "nginx tcp udp")
#
# Cases, each as fast as loggen sends:
#   nginx  the lines the seed's nginx sends (`<158>Nov 28 12:00:00 pixel: 1795811017.123,
#          foo=bar&baz=1`, local3, tag pixel), replayed over TCP (`loggen -i -S -R FILE -d -l`)
#   tcp    loggen's own messages of `message-size` bytes over TCP (`loggen -i -S -s SIZE`)
#   udp    the same over UDP (`loggen -i -D -s SIZE`)
# and the receivers, each into a fresh redis-server of its own, all doing
# LPUSH ${PROGRAM} ${MESSAGE}:
#   1. syslog-ng with its native redis() destination, batch-lines(100), workers(2)
#   2. rsyslog with omhiredis in queue mode (LPUSH) and a dynamic key (the program name)
#   3. pixelpipe relay (through its durable local log and exactly-once shipper)
# Prints, for each: messages loggen sent, records that reached Redis, delivered messages/s
# (from the first send to the last record landing in Redis), the delivered fraction, CPU
# time per 1,000 delivered messages of the receiver plus its Redis (from the first send
# until the last record landed), each one's peak RSS, and the ratios within the run.
# When the receivers keep up, loggen (on the same cores) is what bounds msg/s: compare
# the CPU per message.
#
# Needs: redis-server, redis-cli, python3; loggen and syslog-ng with its redis module
# (Debian syslog-ng-core, syslog-ng-mod-redis), rsyslog with omhiredis (rsyslog,
# rsyslog-hiredis). The two daemons' packages conflict: whichever is not installed is
# unpacked into a cache folder (bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
size=${2:-256}
cases=${3:-nginx tcp udp}
export PATH=$PATH:/usr/sbin:/sbin

for pair in redis-server:redis-server redis-cli:redis-tools python3:python3; do
  command -v "${pair%%:*}" >/dev/null || { echo "missing ${pair%%:*}: apt-get install ${pair#*:}" >&2; exit 1; }
done

cargo build --release --quiet
bin=target/release/pixelpipe
. bench/lib.sh
use_syslog_ng
use_rsyslog
now() { date +%s.%N; }
# Records in every list the messages went to (loggen's program names are prg00000…;
# the nginx lines go to `pixel`).
records() { redis-cli -p "$1" EVAL "local n=0 for _,k in ipairs(redis.call('KEYS','*')) do if redis.call('TYPE',k).ok=='list' then n=n+redis.call('LLEN',k) end end return n" 0; }

# The nginx-shaped lines, as nginx's `access_log syslog:…,facility=local3,tag=pixel` sends
# them over the network (no hostname, RFC 3164 time).
nginx_lines=$work/nginx-lines
for _ in $(seq 1000); do echo '<158>Nov 28 12:00:00 pixel: 1795811017.123,foo=bar&baz=1'; done >"$nginx_lines"

# One run: $1 = syslog-ng | rsyslog | relay, $2 = nginx | tcp | udp.
# Prints "sent records rate fraction rss_mib cpu_ms_per_1000".
run() {
  local who=$1 case=$2 dir=$work/$1-$2 rport port pid proto=tcp
  [ "$case" = udp ] && proto=udp
  mkdir -p "$dir"
  rport=$(free_port); port=$(free_port)
  local redis_pid; start_redis "$rport" "$dir"
  case $who in
  syslog-ng)
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
    ;;
  rsyslog)
    # omhiredis "queue" mode is LPUSH; dynakey takes the key from a template. %msg% keeps
    # the space after "tag:" (RFC 3164), which syslog-ng's ${MESSAGE} drops: skip it.
    cat >"$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir")
module(load="im$proto")
module(load="omhiredis")
input(type="im$proto" address="127.0.0.1" port="$port")
template(name="key" type="string" string="%programname%")
template(name="value" type="string" string="%msg:2:\$%")
action(type="omhiredis" server="127.0.0.1" serverport="$rport" mode="queue" key="key" dynakey="on" template="value")
CONF
    rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/pid" >"$dir/out.log" 2>&1 & pid=$!
    ;;
  relay)
    cat >"$dir/relay.toml" <<CONF
[[relay.routes]]
destination = { redis = { key = "\${PROGRAM}", value = "\${MESSAGE}" } }
CONF
    RUST_LOG=warn $bin --config "$dir/relay.toml" --redis "redis://127.0.0.1:$rport" --data-dir "$dir/data" \
      --admin-listen "127.0.0.1:$(free_port)" relay "--$proto" "127.0.0.1:$port" >"$dir/out.log" 2>&1 & pid=$!
    ;;
  esac
  pids+=($pid)
  if [ "$proto" = tcp ]; then wait_port "$port"; else sleep 1; fi
  local args=(-i -S -s "$size")
  [ "$case" = udp ] && args=(-i -D -s "$size")
  [ "$case" = nginx ] && args=(-i -S -R "$nginx_lines" -d -l)
  local start cpu0; start=$(now); cpu0=$(ticks "$pid" "$redis_pid")
  loggen "${args[@]}" -I "$secs" -r 1000000000 127.0.0.1 "$port" >"$dir/loggen.log" 2>&1 || true
  local sent; sent=$(sed -n 's/.*count=\([0-9]*\).*/\1/p' "$dir/loggen.log" | tail -1)
  [ -n "$sent" ] || { echo "loggen failed:" >&2; cat "$dir/loggen.log" >&2; exit 1; }
  # The last record has landed once the count stops moving for 2 s (or all arrived).
  local n=-1 last_change cpu=0; last_change=$(now)
  local stable=0
  while [ $stable -lt 40 ]; do
    local m; m=$(records "$rport")
    if [ "$m" != "$n" ]; then n=$m; last_change=$(now); cpu=$(ticks "$pid" "$redis_pid"); stable=0; else stable=$((stable + 1)); fi
    [ "$n" -ge "$sent" ] && break
    sleep 0.05
  done
  local rss_kb; rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid" "$redis_pid" 2>/dev/null || true; wait "$pid" "$redis_pid" 2>/dev/null || true
  python3 -c "
sent, n, t, cpu = $sent, $n, $last_change - $start, ($cpu - $cpu0) / $(getconf CLK_TCK)
print(sent, n, int(n / t), f'{100 * n / max(sent, 1):.1f}', $rss_kb // 1024, f'{1e6 * cpu / max(n, 1):.1f}')"
}

receivers=(syslog-ng rsyslog relay)
declare -A r
for c in $cases; do
  for who in "${receivers[@]}"; do
    echo "== $who, $c" >&2
    # Not in a $(…) subshell: the cleanup trap must see the pids `run` starts.
    run "$who" "$c" >"$work/result"
    r[$who-$c]=$(cat "$work/result")
    echo "   ${r[$who-$c]}" >&2
  done
done

ratio() { python3 -c "print(f'{$1/max($2,1e-9):.2f}x')"; }
echo
echo "== results: loggen as fast as it sends for ${secs} s ($size-byte messages for tcp/udp), $(nproc) cores shared by loggen, receiver and Redis"
printf '%-18s %10s %10s %12s %10s %16s %9s\n' setup sent "in Redis" "delivered/s" delivered "CPU ms/1000 msg" "peak RSS"
for c in $cases; do
  for who in "${receivers[@]}"; do
    read -r sent n rate frac rss cpu <<<"${r[$who-$c]}"
    printf '%-18s %10s %10s %12s %9s%% %16s %5s MiB\n' "$who $c" "$sent" "$n" "$rate" "$frac" "$cpu" "$rss"
  done
done
echo
for c in $cases; do
  read -r _ _ sng_rate sng_frac _ sng_cpu <<<"${r[syslog-ng-$c]}"
  read -r _ _ rs_rate rs_frac _ rs_cpu <<<"${r[rsyslog-$c]}"
  read -r _ _ pp_rate pp_frac _ pp_cpu <<<"${r[relay-$c]}"
  echo "$c: CPU per message, syslog-ng / relay $(ratio "$sng_cpu" "$pp_cpu"), rsyslog / relay $(ratio "$rs_cpu" "$pp_cpu");" \
    "delivered msg/s, relay / syslog-ng $(ratio "$pp_rate" "$sng_rate"), relay / rsyslog $(ratio "$pp_rate" "$rs_rate");" \
    "delivered: relay $pp_frac %, syslog-ng $sng_frac %, rsyslog $rs_frac %"
done
