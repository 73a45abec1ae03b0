"""Latency percentiles for bench/latency.sh.

    analyze.py MONITOR_LOG TAIL_LOG WARMUP_SECONDS

MONITOR_LOG: `redis-cli monitor` output; each line starts with the time (µs resolution,
Redis's clock) at which Redis ran the command, and the LPUSH lines carry the records.
TAIL_LOG: `pixelpipe tail | paced stamp`: each line is the time it was printed, then the
record. Every record carries `r=RATE&i=N&t=SENT_US` (the client's clock when it sent the
hit; same machine, same wall clock). Prints, per rate, the records seen and p50/p99/p99.9
of hit → in Redis and hit → printed by tail, in ms, leaving out the first WARMUP seconds.
"""
import re
import sys

HIT = re.compile(rb"r=(\d+)&i=(\d+)&t=(\d+)")


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round((len(values) - 1) * p))]


def collect(path, stamp_of):
    seen = {}
    with open(path, "rb") as f:
        for line in f:
            t = stamp_of(line)
            if t is None:
                continue
            for r, i, sent in HIT.findall(line):
                key = (int(r), int(i))
                if key not in seen:
                    seen[key] = (t - int(sent), int(i))
    return seen


def monitor_stamp(line):
    if b'"LPUSH"' not in line:
        return None
    head = line.split(b" ", 1)[0]
    return int(round(float(head) * 1e6))


def tail_stamp(line):
    head = line.split(b" ", 1)[0]
    return int(head) if head.isdigit() else None


def main():
    monitor_log, tail_log, warmup = sys.argv[1], sys.argv[2], float(sys.argv[3])
    redis = collect(monitor_log, monitor_stamp)
    tail = collect(tail_log, tail_stamp)
    rates = sorted({r for r, _ in redis} | {r for r, _ in tail})
    for rate in rates:
        skip = rate * warmup
        row = [str(rate)]
        for seen in (redis, tail):
            lat = sorted(d / 1000 for (r, _), (d, i) in seen.items() if r == rate and i >= skip)
            row += [str(sum(1 for (r, _) in seen if r == rate))]
            row += [f"{pct(lat, p):.2f}" for p in (0.5, 0.99, 0.999)]
        print(" ".join(row))


main()
