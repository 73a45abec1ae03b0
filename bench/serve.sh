#!/usr/bin/env bash
# pixelpipe serve against Debian's nginx, side by side in one run, under the same wrk load.
#
#   bench/serve.sh [seconds] [rounds]        (defaults: 15 s, 3 rounds)
#
# Runs, one after the other on free loopback ports, `rounds` times over (interleaved, so
# that a slow moment of the machine does not favour one setup):
#   1. nginx empty_gif, access_log to a file ($msec,$args)
#   2. nginx empty_gif, access_log off
#   3. pixelpipe serve, shipping to a real redis-server (defaults: live analytics on)
#   4. the same with `analytics.enabled = false` (delivery alone, like nginx's access log)
#   5. pixelpipe (as 3), POST beacons of one JSON event each (bench/beacon.lua)
#   6. pixelpipe (as 3), POST beacons of a JSON batch of 10 events each
#   7. pixelpipe (as 3) with the privacy step all on: anonymised $remote_addr, the salted
#      $visitor, bot filtering, $ua_browser/$ua_os and $geo_country/$geo_city from a
#      20,000-network MaxMind DB (examples/write_mmdb.rs) — against 3, the plain GIF
# each under `wrk -t2 -c50 -d<seconds>s` with a unique id per request (per event), and
# prints requests/s per round, the ratios within each round and their medians, events/s
# and server CPU per event for the beacons next to the GIF's, pixelpipe's records in Redis
# against the events answered (and duplicates), and pixelpipe's peak RSS.
# Needs: nginx, wrk, redis-server, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rounds=${2:-3}
for p in nginx wrk redis-server redis-cli; do
  command -v $p >/dev/null || PATH=$PATH:/usr/sbin command -v $p >/dev/null || {
    echo "missing $p: apt-get install nginx wrk redis-server redis-tools" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin
cargo build --release --quiet
cargo build --release --quiet --example write_mmdb
bin=target/release/pixelpipe
. bench/lib.sh
target/release/examples/write_mmdb "$work/city.mmdb"
# Every request carries a browser's user agent, so bot filtering lets them through.
ua='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
privacy_format='$msec,$args&v=$visitor&ip=$remote_addr&b=$ua_browser&os=$ua_os&c=$geo_country&city=$geo_city'

ticks() { # pids… → their user+system CPU time so far, in clock ticks (1/100 s)
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
us_per_req() { python3 -c "print(f'{$1*1e6/$(getconf CLK_TCK)/max($2,1):.1f}')"; }

run_wrk() { # port [wrk script] [script arg] → prints "rps requests non2xx"
  local out
  out=$(wrk -t2 -c50 -d"${secs}s" -H "User-Agent: $ua" -s "${2:-bench/unique-ids.lua}" "http://127.0.0.1:$1/pixel.gif" ${3:+-- "$3"} 2>&1)
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
  local workers before r
  workers=$(pgrep -P "$pid" | tr '\n' ' ')
  before=$(ticks $workers)
  r=$(run_wrk "$port")
  local used=$(( $(ticks $workers) - before ))
  kill -QUIT "$pid"; wait "$pid" 2>/dev/null || true
  read -r rps req _ <<<"$r"
  echo "$r $(us_per_req "$used" "$req")"
}

pp_run() { # name [env…] → prints "rps ok records dups rss_mib cpu_us_per_event"
  # $per_req (default 1) events per request, sent by the wrk script $script with arg $per_req.
  local rport pport aport dir=$work/pp-$1 per=${per_req:-1}
  shift
  rport=$(free_port); pport=$(free_port); aport=$(free_port)
  local redis_pid; start_redis "$rport" "$work"; local rpid=$redis_pid
  env "$@" RUST_LOG=warn $bin --redis "redis://127.0.0.1:$rport" --data-dir "$dir" --admin-listen "127.0.0.1:$aport" \
    serve --listen "127.0.0.1:$pport" 2>"$dir.log" & local pp=$!; pids+=($pp)
  wait_port "$pport"
  local rps req non2xx before
  before=$(ticks "$pp" "$rpid")
  read -r rps req non2xx < <(run_wrk "$pport" "${script:-}" "${script:+$per}")
  # CPU of the whole pipeline: pixelpipe and its Redis, until the last record is in.
  # Let the shipper drain, then count.
  local last=-1 n
  for _ in $(seq 300); do
    n=$(redis-cli -p "$rport" LLEN pixel)
    [ "$n" = "$last" ] && break; last=$n; sleep 0.2
  done
  local cpu_us rss_kb records dups
  cpu_us=$(us_per_req $(( $(ticks "$pp" "$rpid") - before )) $((req * per)))
  rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pp/status)
  records=$(redis-cli -p "$rport" LLEN pixel)
  dups=$(redis-cli -p "$rport" --raw LRANGE pixel 0 -1 | sed 's/^[^,]*,//' | sort | uniq -d | wc -l)
  kill "$pp" "$rpid"; wait "$pp" "$rpid" 2>/dev/null || true
  echo "$rps $(((req - non2xx) * per)) $records $dups $((rss_kb / 1024)) $cpu_us"
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }

log_ratios=(); off_ratios=(); bare_log_ratios=(); cpu_log=(); cpu_off=(); cpu_pp=(); cpu_bare=(); total_ok=0; total_records=0; total_dups=0; peak_rss=0
one_ratios=(); ten_ratios=(); cpu_one=(); cpu_ten=(); priv_ratios=(); cpu_priv=()
printf '%-6s %12s %12s %12s %12s %8s %8s %10s %12s %12s %10s\n' round "nginx log" "nginx off" pixelpipe "pp no-stats" "pp/log" "pp/off" "bare/log" "beacon ev/s" "batch10 ev/s" "privacy"
for r in $(seq "$rounds"); do
  read -r ng_log_rps _ _ c < <(nginx_run "log-$r" "access_log $work/nginx-log-$r/logs/pixel.log pixel;"); cpu_log+=("$c")
  read -r ng_off_rps _ _ c < <(nginx_run "off-$r" "access_log off;"); cpu_off+=("$c")
  read -r pp_rps ok records dups rss c < <(pp_run "$r"); cpu_pp+=("$c")
  log_ratios+=("$(ratio "$pp_rps" "$ng_log_rps")"); off_ratios+=("$(ratio "$pp_rps" "$ng_off_rps")")
  total_ok=$((total_ok + ok)); total_records=$((total_records + records)); total_dups=$((total_dups + dups))
  ((rss > peak_rss)) && peak_rss=$rss
  read -r bare_rps ok records dups rss c < <(pp_run "bare-$r" PIXELPIPE_ANALYTICS__ENABLED=false); cpu_bare+=("$c")
  bare_log_ratios+=("$(ratio "$bare_rps" "$ng_log_rps")")
  total_ok=$((total_ok + ok)); total_records=$((total_records + records)); total_dups=$((total_dups + dups))
  ((rss > peak_rss)) && peak_rss=$rss
  read -r one_rps ok records dups rss c < <(script=bench/beacon.lua per_req=1 pp_run "beacon-$r"); cpu_one+=("$c")
  one_ratios+=("$(ratio "$one_rps" "$pp_rps")")
  total_ok=$((total_ok + ok)); total_records=$((total_records + records)); total_dups=$((total_dups + dups))
  read -r ten_rps ok records dups rss c < <(script=bench/beacon.lua per_req=10 pp_run "batch-$r"); cpu_ten+=("$c")
  ten_eps=$(python3 -c "print(f'{$ten_rps*10:.2f}')")
  ten_ratios+=("$(ratio "$ten_eps" "$pp_rps")")
  total_ok=$((total_ok + ok)); total_records=$((total_records + records)); total_dups=$((total_dups + dups))
  ((rss > peak_rss)) && peak_rss=$rss
  read -r priv_rps ok records dups rss c < <(pp_run "priv-$r" PIXELPIPE_HTTP__FORMAT="$privacy_format" PIXELPIPE_ENRICH__GEOIP_DB="$work/city.mmdb"); cpu_priv+=("$c")
  priv_ratios+=("$(ratio "$priv_rps" "$pp_rps")")
  total_ok=$((total_ok + ok)); total_records=$((total_records + records)); total_dups=$((total_dups + dups))
  ((rss > peak_rss)) && peak_rss=$rss
  printf '%-6s %12s %12s %12s %12s %8s %8s %10s %12s %12s %10s\n' "$r" "$ng_log_rps" "$ng_off_rps" "$pp_rps" "$bare_rps" "${log_ratios[-1]}" "${off_ratios[-1]}" "${bare_log_ratios[-1]}" "$one_rps" "$ten_eps" "$priv_rps"
done

echo
echo "== results (wrk -t2 -c50 -d${secs}s, unique id per request, $(nproc) cores shared by wrk, server and Redis; $rounds rounds)"
echo "pixelpipe vs nginx access_log file: $(median "${log_ratios[@]}")x (median of ${log_ratios[*]})"
echo "pixelpipe vs nginx access_log off:  $(median "${off_ratios[@]}")x (median of ${off_ratios[*]})"
echo "pixelpipe without analytics vs nginx access_log file: $(median "${bare_log_ratios[@]}")x (median of ${bare_log_ratios[*]})"
echo "server CPU per request, median µs (nginx: its workers; pixelpipe: pixelpipe + its Redis):"
echo "  nginx access_log file $(median "${cpu_log[@]}"), nginx access_log off $(median "${cpu_off[@]}"), pixelpipe $(median "${cpu_pp[@]}"), pixelpipe without analytics $(median "${cpu_bare[@]}")"
echo "beacons (POST /e, text/plain JSON), events/s against the GIF's requests/s in the same round:"
echo "  one event per request $(median "${one_ratios[@]}")x (median of ${one_ratios[*]}), a batch of 10 $(median "${ten_ratios[@]}")x (median of ${ten_ratios[*]})"
echo "  server CPU per event, median µs: GIF $(median "${cpu_pp[@]}"), beacon $(median "${cpu_one[@]}"), batch of 10 $(median "${cpu_ten[@]}")"
echo "privacy step all on (anonymised address, \$visitor, bots, UA, GeoIP) vs the plain GIF: $(median "${priv_ratios[@]}")x (median of ${priv_ratios[*]}; target >= 0.85); server CPU per hit, median µs: $(median "${cpu_priv[@]}") vs $(median "${cpu_pp[@]}")"
echo "pixelpipe events answered, counted by wrk (all pixelpipe setups, all rounds): $total_ok"
echo "records in Redis: $total_records ($(python3 -c "print(f'{100*$total_records/max($total_ok,1):.3f}')") % of 200s; above 100 % = hits answered after wrk stopped counting)"
echo "duplicate records: $total_dups"
echo "pixelpipe peak RSS: $peak_rss MiB"
