"""Latency percentiles for bench/latency.sh.

    analyze.py MONITOR_LOG TAIL_LOG WARMUP_SECONDS [ANSWERS_LOG…]

MONITOR_LOG: `redis-cli monitor` output; each line starts with the time (µs resolution,
Redis's clock) at which Redis ran the command, and the LPUSH lines carry the records.
TAIL_LOG: `pixelpipe tail | paced stamp`: each line is the time it was printed, then the
record. Every record carries `r=RATE&i=N&t=SENT_US` (the client's clock when it sent the
hit; same machine, same wall clock). ANSWERS_LOG: `paced load`'s answers file, a line
per answered hit: its send time and how long its answer took (µs). Prints, per rate, the
records seen and p50/p99/p99.9 of hit → in Redis and hit → printed by tail, then of
answered → in Redis (the shipping alone: from the moment the client had its 200 until
Redis ran the LPUSH), in ms, leaving out the first WARMUP seconds.
"""
import re
import sys

HIT = re.compile(rb"r=(\d+)&i=(\d+)&t=(\d+)")


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round((len(values) - 1) * p))]


def collect(path, stamp_of):
    """(rate, i) → (latency from the client's send, i, send time), in µs."""
    seen = {}
    with open(path, "rb") as f:
        for line in f:
            t = stamp_of(line)
            if t is None:
                continue
            for r, i, sent in HIT.findall(line):
                key = (int(r), int(i))
                if key not in seen:
                    seen[key] = (t - int(sent), int(i), int(sent))
    return seen


def monitor_stamp(line):
    if b'"LPUSH"' not in line:
        return None
    head = line.split(b" ", 1)[0]
    return int(round(float(head) * 1e6))


def tail_stamp(line):
    head = line.split(b" ", 1)[0]
    return int(head) if head.isdigit() else None


def answered(paths):
    """send time → answer time (µs), from paced's answers files; a send time seen twice
    is left out (it cannot say which hit it was)."""
    at, twice = {}, set()
    for path in paths:
        with open(path) as f:
            for line in f:
                sent, latency = map(int, line.split())
                if sent in at:
                    twice.add(sent)
                at[sent] = sent + latency
    for sent in twice:
        del at[sent]
    return at


def main():
    monitor_log, tail_log, warmup = sys.argv[1], sys.argv[2], float(sys.argv[3])
    redis = collect(monitor_log, monitor_stamp)
    tail = collect(tail_log, tail_stamp)
    # Answered → in Redis: hit → in Redis less hit → answered, per hit.
    answers = answered(sys.argv[4:])
    shipping = {
        key: (sent + d - answers[sent], i, sent)
        for key, (d, i, sent) in redis.items()
        if sent in answers
    }
    rates = sorted({r for r, _ in redis} | {r for r, _ in tail})
    for rate in rates:
        skip = rate * warmup
        row = [str(rate)]
        for seen in (redis, tail) + ((shipping,) if answers else ()):
            lat = sorted(d / 1000 for (r, _), (d, i, _) in seen.items() if r == rate and i >= skip)
            row += [str(sum(1 for (r, _) in seen if r == rate))]
            row += [f"{pct(lat, p):.2f}" for p in (0.5, 0.99, 0.999)]
        print(" ".join(row))


main()
