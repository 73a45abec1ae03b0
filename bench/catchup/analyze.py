"""Prints bench/catchup.sh's results for one case from its samples and phase marks.

    analyze.py SAMPLES MARKS CEILING_COMMANDS BATCH VALUE_BYTES [ANSWERS]

SAMPLES: bench/catchup/sample.py's lines. MARKS: `name wall-clock-seconds` lines: normal
(load started), down (Redis stopped), up (Redis answering again). CEILING_COMMANDS:
redis-benchmark's LPUSH commands/s with BATCH values of VALUE_BYTES each. ANSWERS:
paced.rs's `SENT_US LATENCY_US` lines, when the load was paced.
"""
import sys

samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
marks = {k: float(v) for k, v in (l.split() for l in open(sys.argv[2]) if l.strip())}
ceiling_cmds, batch, value_bytes = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
answers_path = sys.argv[6] if len(sys.argv) > 6 else None


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
ceiling = ceiling_cmds * batch
resumed = start[0] - marks["up"]

print(f"backlog when Redis came back: {backlog_records:,.0f} records ({up[3] / 2**20:.1f} MiB); "
      f"shipping resumed {resumed:.2f} s after Redis answered (reconnect backoff)")
print(f"drain: {drain:,.0f} records/s for {end[0] - start[0]:.2f} s (new hits included); "
      f"Redis back -> backlog drained: {end[0] - marks['up']:.2f} s")
print(f"ceiling: redis-benchmark -c 1 LPUSH of {batch} values of {value_bytes} bytes a command: "
      f"{ceiling:,.0f} records/s ({ceiling_cmds:,.0f} commands/s)")
print(f"drain / ceiling: {drain / max(ceiling, 1):.2f}")
print(f"served hits/s before the outage {normal:.0f}, during it {outage:.0f}, during the drain "
      f"{serving:.0f} ({100 * serving / max(normal, 1):.0f} % of before)")
# A 60 s outage at these rates: its backlog shrinks by the drain rate less the hits that
# keep coming.
net = drain - serving
if net > 0:
    print(f"a 60 s outage at these rates: {60 * normal:,.0f} records, drained in "
          f"{resumed + 60 * normal / net:.1f} s after Redis is back ({resumed:.1f} s of it reconnecting)")

if answers_path:
    sent, done, latency = [], [], []
    for line in open(answers_path):
        s_us, l_us = map(int, line.split())
        sent.append(s_us / 1e6)
        done.append((s_us + l_us) / 1e6)
        latency.append(l_us)

    def phase(a, b):
        """Answers per second that came back in [a, b]; latency of the hits sent in it."""
        n = sum(1 for t in done if a <= t < b)
        lat = sorted(l for t, l in zip(sent, latency) if a <= t < b)
        pct = lambda p: lat[min(len(lat) - 1, round((len(lat) - 1) * p))] if lat else float("nan")
        return n / max(b - a, 1e-9), pct(0.5), pct(0.99), pct(0.999)

    before = phase(marks["normal"] + 1, marks["down"] - 0.1)
    during = phase(start[0], end[0])
    print(f"answers/s seen by the client: before the outage {before[0]:.0f}, during the drain "
          f"{during[0]:.0f} ({100 * during[0] / max(before[0], 1):.0f} % of before)")
    print(f"answer latency p50 / p99 / p99.9 (us): before the outage {before[1]} / {before[2]} / "
          f"{before[3]}, during the drain {during[1]} / {during[2]} / {during[3]}")
