"""Samples pixelpipe's /metrics every 50 ms until killed, one line per sample:
`wall-clock-seconds hits shipped-records backlog-bytes`.

    sample.py ADMIN_PORT
"""
import sys
import time
import urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
names = {
    "pixelpipe_http_hits_total": 0,
    "pixelpipe_shipped_records_total": 1,
    "pixelpipe_backlog_bytes": 2,
}
while True:
    values = [0, 0, 0]
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            for line in r.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in names:
                    values[names[name]] = float(value)
    except OSError:
        time.sleep(0.05)
        continue
    print(f"{time.time():.3f} {values[0]:.0f} {values[1]:.0f} {values[2]:.0f}", flush=True)
    time.sleep(0.05)
