#!/usr/bin/env bash
# Debian's nginx logging to a unix datagram socket under `ab -c 10 -n 10000`, as in the
# original recipe: how many lines reach Redis through each receiver.
#
#   bench/relay_nginx.sh [rounds]        (default: 10)
#
# nginx (2 workers) writes `access_log syslog:server=unix:SOCKET,facility=local3,
# tag=pixel,nohostname` and drops a line, logging `send() to syslog failed`, whenever the
# socket's queue is full. In each round, one after the other, the socket is read by:
#   1. syslog-ng with the original recipe's configuration (unix-dgram source, the LPUSH
#      template over tcp() to Redis; syslog-ng's default close-on-input(yes)
#      drops the connection at Redis's first reply, so few records land whatever the queue)
#   2. pixelpipe relay with `queue_len = 10`: the host's default depth, drained by the
#      real-time receiver thread alone (no effect if the host's sysctl is deeper already)
#   3. pixelpipe relay as configured by default (`queue_len = 512`)
# each into a fresh redis-server. Prints, per receiver, the lines nginx could not send,
# the records in Redis, and the rounds in which all 10,000 arrived.
#
# Needs: nginx, syslog-ng (syslog-ng-core), ab (apache2-utils), redis-server, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
export PATH=$PATH:/usr/sbin:/sbin
for bin in nginx syslog-ng ab redis-server redis-cli python3; do
  command -v $bin >/dev/null || { echo "missing $bin: apt-get install nginx syslog-ng-core apache2-utils redis-server redis-tools python3" >&2; exit 1; }
done
cargo build --release --quiet
bin=$PWD/target/release/pixelpipe
. bench/lib.sh
n_requests=10000

# One run: $1 = syslog-ng | relay-10 | relay-512. Prints "failed records".
run() {
  local who=$1 dir=$work/$1-$2 rport hport pid
  mkdir -p "$dir"
  rport=$(free_port); hport=$(free_port)
  local sock=$dir/log.sock
  local redis_pid; start_redis "$rport" "$dir"
  if [ "$who" = syslog-ng ]; then
    cat >"$dir/syslog-ng.conf" <<CONF
@version: 3.38
options { stats-freq(0); };
source s_local { unix-dgram("$sock" perm(0666)); };
template t_redis_lpush {
  template("*3\r\n\$\$5\r\nLPUSH\r\n\$\$\$(length \${PROGRAM})\r\n\${PROGRAM}\r\n\$\$\$(length \${MESSAGE})\r\n\${MESSAGE}\r\n");
};
destination d_redis_tcp { tcp("127.0.0.1" port($rport) template(t_redis_lpush)); };
filter f_redis { facility(local3); };
log { source(s_local); filter(f_redis); destination(d_redis_tcp); };
CONF
    syslog-ng -F --no-caps -f "$dir/syslog-ng.conf" -R "$dir/persist" -c "$dir/ctl" -p "$dir/pid" >"$dir/out.log" 2>&1 & pid=$!
  else
    cat >"$dir/relay.toml" <<CONF
[[relay.sources]]
type = "unix"
path = "$sock"
queue_len = ${who#relay-}
CONF
    RUST_LOG=warn $bin --config "$dir/relay.toml" --redis "redis://127.0.0.1:$rport" --data-dir "$dir/data" \
      --admin-listen "127.0.0.1:$(free_port)" relay >"$dir/out.log" 2>&1 & pid=$!
  fi
  pids+=($pid)
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { echo "$who never created $sock:" >&2; cat "$dir/out.log" >&2; exit 1; }
  mkdir -p "$dir/nginx"
  cat >"$dir/nginx/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 1024; }
http {
  log_format pixel '\$msec,\$args';
  access_log off;
  client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
  server {
    listen 127.0.0.1:$hport;
    location = /pixel.gif {
      access_log syslog:server=unix:$sock,facility=local3,tag=pixel,nohostname pixel;
      empty_gif;
    }
  }
}
CONF
  nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" & local nginx_pid=$!; pids+=($nginx_pid)
  wait_port "$hport"
  ab -q -c 10 -n $n_requests "http://127.0.0.1:$hport/pixel.gif?foo=bar&baz=1" >"$dir/ab.log"
  local failed; failed=$(grep -c 'send() to syslog failed' "$dir/nginx/error.log" || true)
  # Settled once everything nginx sent is there, or the count stops moving for 2 s.
  local n=-1 stable=0 m
  while [ $stable -lt 40 ]; do
    m=$(redis-cli -p "$rport" LLEN pixel)
    if [ "$m" != "$n" ]; then n=$m; stable=0; else stable=$((stable + 1)); fi
    [ "$n" -ge $((n_requests - failed)) ] && break
    sleep 0.05
  done
  kill "$nginx_pid" "$pid" "$redis_pid" 2>/dev/null || true
  wait "$nginx_pid" "$pid" "$redis_pid" 2>/dev/null || true
  echo "$failed $n"
}

receivers=(syslog-ng relay-10 relay-512)
declare -A failed records complete
for who in "${receivers[@]}"; do failed[$who]=0; records[$who]=0; complete[$who]=0; done
for round in $(seq "$rounds"); do
  for who in "${receivers[@]}"; do
    run "$who" "$round" >"$work/result"
    read -r f n <"$work/result"
    echo "round $round, $who: nginx could not send $f, $n in Redis" >&2
    failed[$who]=$((failed[$who] + f)); records[$who]=$((records[$who] + n))
    [ "$n" -eq $n_requests ] && complete[$who]=$((complete[$who] + 1))
  done
done

echo
echo "== results: $rounds rounds of ab -c 10 -n $n_requests, nginx with 2 workers, $(nproc) cores," \
  "host net.unix.max_dgram_qlen=$(cat /proc/sys/net/unix/max_dgram_qlen)"
printf '%-12s %14s %14s %10s %16s\n' receiver "nginx dropped" "in Redis" delivered "rounds complete"
for who in "${receivers[@]}"; do
  total=$((rounds * n_requests))
  printf '%-12s %14s %14s %9s%% %13s/%s\n' "$who" "${failed[$who]}" "${records[$who]}" \
    "$(python3 -c "print(f'{100 * ${records[$who]} / $total:.3f}')")" "${complete[$who]}" "$rounds"
done
