#!/usr/bin/python3
# Writes the Redis protocol for N events LPUSHed on `pixel` (1,000 per command), for
# `redis-cli --pipe`. Events look like what `pixelpipe serve` ships:
#   1700000000.123,utm_source=google&variant=A&uid=u4711&page=%2Fpricing
import sys

n = int(sys.argv[1])
sources = ["google", "news%20letter", "direct", "twitter"]
out = sys.stdout.buffer
per = 1000
for start in range(0, n, per):
    values = []
    for i in range(start, min(n, start + per)):
        ts = "%d.%03d" % (1700000000 + i // 10000, i % 1000)
        q = "utm_source=%s&variant=%s&uid=u%d&page=%%2Fpricing" % (
            sources[i % 4], "AB"[i % 2], (i * 7919) % 100000)
        values.append(("%s,%s" % (ts, q)).encode())
    parts = [b"LPUSH", b"pixel"] + values
    out.write(b"*%d\r\n" % len(parts))
    for p in parts:
        out.write(b"$%d\r\n%s\r\n" % (len(p), p))
