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
# has one of them installed at most. When one is missing, `unpack_debs NAME PKG…` unpacks
# Debian's packages (`apt-get download`, no install) into a cache folder; use_syslog_ng and
# use_rsyslog then put wrappers on PATH. Their libraries (libivykis0, libnet1, libestr0,
# libfastjson4, libhiredis0.14, …) must be installed: they stay when the daemon is removed.
bench_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pixelpipe-bench
unpack_debs() { # name, packages… → prints the folder they are unpacked in
  local dir=$bench_cache/$1; shift
  if [ ! -d "$dir/root" ]; then
    echo "$* not installed: unpacking Debian's packages into $dir" >&2
    rm -rf "$dir"; mkdir -p "$dir/debs"
    (cd "$dir/debs" && apt-get download "$@" >/dev/null 2>&1) \
      || { echo "apt-get download $* failed" >&2; return 1; }
    local d; for d in "$dir"/debs/*.deb; do dpkg -x "$d" "$dir/root.tmp"; done
    mv "$dir/root.tmp" "$dir/root"
  fi
  echo "$dir"
}
use_syslog_ng() {
  export PATH=$PATH:/usr/sbin:/sbin
  if command -v syslog-ng >/dev/null && command -v loggen >/dev/null \
    && ls /usr/lib/syslog-ng/*/libredis.so >/dev/null 2>&1; then return 0; fi
  local dir root mods
  dir=$(unpack_debs syslog-ng syslog-ng-core syslog-ng-mod-redis) || return 1
  root=$dir/root; mods=$(echo "$root"/usr/lib/syslog-ng/3.*)
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s --module-path=%s "$@"\n' \
    "$root/usr/lib/syslog-ng" "$root/usr/sbin/syslog-ng" "$mods" >"$dir/bin/syslog-ng"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s SYSLOGNG_PREFIX=%s exec %s "$@"\n' \
    "$root/usr/lib/syslog-ng" "$root/usr" "$root/usr/bin/loggen" >"$dir/bin/loggen"
  chmod +x "$dir/bin/syslog-ng" "$dir/bin/loggen"
  export PATH=$dir/bin:$PATH
}
use_rsyslog() {
  export PATH=$PATH:/usr/sbin:/sbin
  if command -v rsyslogd >/dev/null && ls /usr/lib/*/rsyslog/omhiredis.so >/dev/null 2>&1; then return 0; fi
  local dir mods
  dir=$(unpack_debs rsyslog rsyslog rsyslog-hiredis) || return 1
  mods=$(dirname "$(echo "$dir"/root/usr/lib/*/rsyslog/omhiredis.so)")
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\nexec %s -M %s "$@"\n' "$dir/root/usr/sbin/rsyslogd" "$mods" >"$dir/bin/rsyslogd"
  chmod +x "$dir/bin/rsyslogd"
  export PATH=$dir/bin:$PATH
}
# CPU time (user + system) of processes so far, in clock ticks (1/CLK_TCK s).
ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
