#!/usr/bin/env bash
# Memory per idle keep-alive connection, pixelpipe serve beside Debian's nginx.
#
#   bench/connections.sh [connections] [settle-seconds]        (defaults: 10000, 5)
#
# For each server, on free loopback ports in one run: start it (pixelpipe with a real
# redis-server), warm it with a few hundred requests, read its RSS, then open N keep-alive
# connections (bench/connections/hold.py), make one hit on each and leave them idle, read
# the RSS again, close them all, wait `settle` seconds, and read it a last time. Prints the
# RSS added per idle connection and the RSS after they closed against the start.
# pixelpipe's RSS is its own (its Redis is not counted); nginx's is the sum of its master
# and workers (worker_processes auto, access_log to a file).
#
# Needs: nginx, redis-server, redis-cli, python3, a file-descriptor limit above N.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
settle=${2:-5}
export PATH=$PATH:/usr/sbin
for p in nginx redis-server redis-cli python3; do
  command -v $p >/dev/null || { echo "missing $p: apt-get install nginx redis-server redis-tools python3" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > n + 100 )) || { echo "file-descriptor limit $(ulimit -n) is too low for $n connections" >&2; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/pixelpipe
. bench/lib.sh

rss_kb() { # pids… → the sum of their VmRSS in KiB
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
  echo "$t"
}

warm() { # port: a few hundred requests, so that lazily built state exists before the baseline
  python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for i in range(300):
    s.sendall(b"GET /pixel.gif?warm=%d HTTP/1.1\r\nHost: bench\r\n\r\n" % i)
    data = b""
    while not data.endswith(b"\x3b") or b"\r\n\r\n" not in data:  # the GIF ends with ';'
        data += s.recv(4096)
s.close()
PY
}

# Measures the server whose processes are "$@" on port $port. Prints "before idle after ok".
measure() {
  local port=$1; shift
  warm "$port"
  sleep 1
  local before; before=$(rss_kb "$@")
  coproc HOLD { python3 bench/connections/hold.py "$port" "$n"; }
  local ready ok
  read -r ready ok <&"${HOLD[0]}"
  [ "$ready" = ready ] || { echo "hold.py failed" >&2; exit 1; }
  sleep 1
  local idle; idle=$(rss_kb "$@")
  echo close >&"${HOLD[1]}"
  local closed; read -r closed <&"${HOLD[0]}"
  wait "$HOLD_PID" 2>/dev/null || true
  sleep "$settle"
  local after; after=$(rss_kb "$@")
  echo "$before $idle $after $ok"
}

pixelpipe_case() {
  local dir=$work/pp rport pport
  mkdir -p "$dir"
  rport=$(free_port); pport=$(free_port)
  local redis_pid; start_redis "$rport" "$dir"
  PIXELPIPE_HTTP__MAX_CONNECTIONS=$((n + 1000)) PIXELPIPE_HTTP__IDLE_TIMEOUT=10m RUST_LOG=warn \
    "$bin" --redis "redis://127.0.0.1:$rport" --data-dir "$dir/data" --admin-listen "127.0.0.1:$(free_port)" \
    serve --listen "127.0.0.1:$pport" 2>"$dir/serve.log" &
  local pp=$!; pids+=($pp)
  wait_port "$pport"
  measure "$pport" "$pp"
  kill "$pp" "$redis_pid"; wait "$pp" "$redis_pid" 2>/dev/null || true
}

nginx_case() {
  local dir=$work/nginx port; port=$(free_port); mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
worker_rlimit_nofile $((n + 1000));
user root;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections $((n + 1000)); }
http {
  log_format pixel '\$msec,\$args';
  keepalive_timeout 600s;
  keepalive_requests 100000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    location = /pixel.gif { access_log $dir/logs/pixel.log pixel; empty_gif; }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' & local pid=$!; pids+=($pid)
  wait_port "$port"
  measure "$port" "$pid" $(pgrep -P "$pid" | tr '\n' ' ')
  kill -QUIT "$pid"; wait "$pid" 2>/dev/null || true
}

echo "== pixelpipe serve, $n idle keep-alive connections" >&2
# Not in a $(…) subshell: the cleanup trap must see the pids the cases start.
pixelpipe_case >"$work/pp.result"
read -r pp_before pp_idle pp_after pp_ok <"$work/pp.result"
echo "== nginx, $n idle keep-alive connections" >&2
nginx_case >"$work/nginx.result"
read -r ng_before ng_idle ng_after ng_ok <"$work/nginx.result"

row() { # name before idle after ok
  python3 -c "
name, before, idle, after, ok, n = '$1', $2, $3, $4, $5, $n
print(f'{name:<16} {before/1024:>10.1f} {idle/1024:>10.1f} {(idle-before)*1024/n:>12.0f} {after/1024:>10.1f} {100*(after-before)/before:>+10.1f}% {ok:>8}')"
}
echo
echo "== results: $n idle keep-alive connections (one hit each), RSS after they closed read ${settle} s later, $(nproc) cores"
printf '%-16s %10s %10s %12s %10s %11s %8s\n' server "start MiB" "idle MiB" "B/connection" "after MiB" "vs start" "200s"
row "pixelpipe serve" "$pp_before" "$pp_idle" "$pp_after" "$pp_ok"
row "nginx" "$ng_before" "$ng_idle" "$ng_after" "$ng_ok"
