#!/usr/bin/env bash
# pixelpipe serve against Debian's nginx, side by side in one run, under the same wrk load.
#
#   bench/serve.sh [seconds]        (default 15)
#
# Runs, one after the other on free loopback ports:
#   1. nginx empty_gif, access_log to a file ($msec,$args)
#   2. nginx empty_gif, access_log off
#   3. pixelpipe serve, shipping to a real redis-server
# each under `wrk -t2 -c50 -d<seconds>s` with a unique id per request, and prints
# requests/s, the ratios, pixelpipe's records in Redis against wrk's 200s (and
# duplicates), and pixelpipe's peak RSS. Needs: nginx, wrk, redis-server, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
for p in nginx wrk redis-server redis-cli; do
  command -v $p >/dev/null || PATH=$PATH:/usr/sbin command -v $p >/dev/null || {
    echo "missing $p: apt-get install nginx wrk redis-server redis-tools" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin
cargo build --release --quiet
bin=target/release/pixelpipe
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

run_wrk() { # port → prints "rps requests non2xx"
  local out
  out=$(wrk -t2 -c50 -d"${secs}s" -s bench/unique-ids.lua "http://127.0.0.1:$1/pixel.gif" 2>&1)
  local rps req non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  req=$(sed -n 's/.*WRK_RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
  non2xx=$(sed -n 's/.*non2xx=\([0-9]*\).*/\1/p' <<<"$out")
  echo "$rps $req $non2xx"
}

nginx_run() { # name, access_log directive
  local dir=$work/nginx-$1 port; port=$(free_port); mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
user root;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 4096; }
http {
  log_format pixel '\$msec,\$args';
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    location = /pixel.gif { $2 empty_gif; }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' & local pid=$!; pids+=($pid)
  wait_port "$port"
  local r; r=$(run_wrk "$port")
  kill -QUIT "$pid"; wait "$pid" 2>/dev/null || true
  echo "$r"
}

echo "== nginx, access_log to a file"; read -r ng_log_rps ng_log_req _ < <(nginx_run log "access_log $work/nginx-log/logs/pixel.log pixel;")
echo "   $ng_log_rps req/s"
echo "== nginx, access_log off";      read -r ng_off_rps _ _ < <(nginx_run off "access_log off;")
echo "   $ng_off_rps req/s"

echo "== pixelpipe serve → redis"
rport=$(free_port); pport=$(free_port); aport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)
wait_port "$rport"
RUST_LOG=warn $bin --redis "redis://127.0.0.1:$rport" --data-dir "$work/pp" --admin-listen "127.0.0.1:$aport" \
  serve --listen "127.0.0.1:$pport" 2>"$work/pp.log" & pp=$!; pids+=($pp)
wait_port "$pport"
read -r pp_rps pp_req pp_non2xx < <(run_wrk "$pport")
echo "   $pp_rps req/s"
# Let the shipper drain, then count.
last=-1
for _ in $(seq 300); do
  n=$(redis-cli -p "$rport" LLEN pixel)
  [ "$n" = "$last" ] && break; last=$n; sleep 0.2
done
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pp/status)
records=$(redis-cli -p "$rport" LLEN pixel)
dups=$(redis-cli -p "$rport" --raw LRANGE pixel 0 -1 | sed 's/^[^,]*,//' | sort | uniq -d | wc -l)
ok=$((pp_req - pp_non2xx))

echo
echo "== results (wrk -t2 -c50 -d${secs}s, unique id per request, $(nproc) cores shared by wrk, server and Redis)"
printf '%-38s %12s %10s\n' setup "req/s" "ratio"
printf '%-38s %12s %10s\n' "nginx empty_gif, access_log file" "$ng_log_rps" "1.00"
printf '%-38s %12s %10s\n' "nginx empty_gif, access_log off" "$ng_off_rps" "$(python3 -c "print(f'{$ng_off_rps/$ng_log_rps:.2f}')")"
printf '%-38s %12s %10s\n' "pixelpipe serve → Redis" "$pp_rps" "$(python3 -c "print(f'{$pp_rps/$ng_log_rps:.2f}')")"
echo
echo "pixelpipe vs nginx access_log file: $(python3 -c "print(f'{$pp_rps/$ng_log_rps:.2f}x')")"
echo "pixelpipe vs nginx access_log off:  $(python3 -c "print(f'{$pp_rps/$ng_off_rps:.2f}x')")"
echo "pixelpipe 200 responses counted by wrk: $ok (non-2xx: $pp_non2xx)"
echo "records in Redis: $records ($(python3 -c "print(f'{100*$records/max($ok,1):.3f}')") % of 200s; more than 100 % = requests answered after wrk stopped counting)"
echo "duplicate records: $dups"
echo "pixelpipe peak RSS: $((rss_kb / 1024)) MiB"
