# Shared by the bench scripts (sourced): a scratch folder, the processes to stop on exit,
# free loopback ports, waiting for a port to open, and a throwaway Redis.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
# A throwaway redis-server on port $1 with its files in $2 (no persistence); sets $redis_pid.
start_redis() {
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$2" >/dev/null 2>&1 &
  redis_pid=$!; pids+=($redis_pid)
  wait_port "$1"
}
# Debian's rsyslog and syslog-ng-core conflict (both provide system-log-daemon), so a host
# has one of them installed at most. When `syslog-ng`/`loggen` are not on PATH, this
# unpacks Debian's syslog-ng-core and syslog-ng-mod-redis (`apt-get download`, no install)
# into a cache folder and puts wrappers for both on PATH. Their libraries (libivykis0,
# libnet1, libjson-c5, …) must be installed; they stay when syslog-ng-core is removed.
use_syslog_ng() {
  export PATH=$PATH:/usr/sbin:/sbin
  if command -v syslog-ng >/dev/null && command -v loggen >/dev/null \
    && ls /usr/lib/syslog-ng/*/libredis.so >/dev/null 2>&1; then return 0; fi
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/pixelpipe-bench/syslog-ng
  if [ ! -x "$cache/bin/loggen" ]; then
    echo "syslog-ng is not installed (rsyslog conflicts with it): unpacking Debian's packages into $cache" >&2
    rm -rf "$cache"; mkdir -p "$cache/debs" "$cache/bin"
    (cd "$cache/debs" && apt-get download syslog-ng-core syslog-ng-mod-redis >/dev/null 2>&1) \
      || { echo "apt-get download syslog-ng-core syslog-ng-mod-redis failed" >&2; return 1; }
    local d; for d in "$cache"/debs/*.deb; do dpkg -x "$d" "$cache/root"; done
    local root=$cache/root mods; mods=$(echo "$root"/usr/lib/syslog-ng/3.*)
    cat >"$cache/bin/syslog-ng" <<SH
#!/bin/sh
LD_LIBRARY_PATH=$root/usr/lib/syslog-ng exec $root/usr/sbin/syslog-ng --module-path=$mods "\$@"
SH
    cat >"$cache/bin/loggen" <<SH
#!/bin/sh
LD_LIBRARY_PATH=$root/usr/lib/syslog-ng SYSLOGNG_PREFIX=$root/usr exec $root/usr/bin/loggen "\$@"
SH
    chmod +x "$cache/bin/syslog-ng" "$cache/bin/loggen"
  fi
  export PATH=$cache/bin:$PATH
}
# CPU time (user + system) of processes so far, in clock ticks (1/CLK_TCK s).
ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
