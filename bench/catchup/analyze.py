"""Reads bench/catchup.sh's samples and phase marks and prints
`normal_rps outage_rps drain_rps serving_during_drain_rps drain_seconds reconnect_seconds
backlog_records`.

    analyze.py SAMPLES MARKS

MARKS holds `name wall-clock-seconds` lines: normal (load started), down (Redis stopped),
up (Redis answering again).
"""
import sys

samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
marks = {k: float(v) for k, v in (l.split() for l in open(sys.argv[2]) if l.strip())}


def at(t):
    """The first sample at or after t."""
    return next(s for s in samples if s[0] >= t)


def rate(a, b, col):
    return (b[col] - a[col]) / max(b[0] - a[0], 1e-9)


# Normal: from 1 s after the load started to Redis going down.
normal = rate(at(marks["normal"] + 1), at(marks["down"] - 0.1), 1)
outage = rate(at(marks["down"] + 0.5), at(marks["up"] - 0.1), 1)
up = at(marks["up"])
backlog_records = up[1] - up[2]
# Shipping resumes at the first sample after `up` whose shipped count moved, and the
# backlog is drained at the first sample after that with less than 64 KiB left.
after = [s for s in samples if s[0] >= marks["up"]]
first = next(i for i, s in enumerate(after) if s[2] > up[2])
start = after[max(first - 1, 0)]
end = next((s for s in after[first:] if s[3] < 64 * 1024), after[-1])
drain = rate(start, end, 2)
serving = rate(start, end, 1)
print(f"{normal:.0f} {outage:.0f} {drain:.0f} {serving:.0f} {end[0] - start[0]:.2f} "
      f"{start[0] - marks['up']:.2f} {backlog_records:.0f}")
