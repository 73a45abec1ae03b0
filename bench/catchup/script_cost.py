"""What Redis spends per shipped record: the list sink's two ways against plain LPUSH.

    python3 bench/catchup/script_cost.py [records per batch…]     (default: 40 300 3000)

Starts its own redis-server on a free loopback port (no persistence) and sends, for each
batch size, 1,500 batches of real-looking records three ways on one connection, one batch
per round trip, reading Redis's own CPU time (INFO cpu) around each:
  1. `EVALSHA ship.lua`, the script the list sink falls back to when a key holds another
     type (src/ship/ship.lua), and the stream and cluster sinks' script;
  2. what the list sink sends as a rule (src/ship/list_push.rs): MULTI, LPUSH of the
     records, EVAL of src/ship/list_check.lua (checks the position and either sets it or
     takes the batch back off the list), EXEC;
  3. plain `LPUSH` of the batch (what redis-benchmark's ceiling measures: no position).
Prints Redis's CPU per record for each. Needs redis-server and python3 (std only).
"""
import os
import socket
import subprocess
import sys
import time

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src", "ship")
SHIP = open(os.path.join(SRC, "ship.lua")).read()
# As the sink sends it: without its comments (Redis hashes the text on every EVAL).
CHECK = "\n".join(l for l in open(os.path.join(SRC, "list_check.lua")).read().splitlines()
                  if not l.lstrip().startswith("--"))
BATCHES = 1500


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def send(self, *commands):
        self.s.sendall(b"".join(commands))

    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            return None if int(rest) < 0 else self.f.read(int(rest) + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(max(int(rest), 0))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def cpu(self):
        self.send(enc("INFO", "cpu"))
        info = dict(l.split(":", 1) for l in self.read().decode().split("\r\n") if ":" in l)
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(c, n):
    records = [b"1795811017.%03d,foo=bar&baz=1&id=%d" % (i % 1000, i) for i in range(n * BATCHES)]
    batches = [records[b * n:(b + 1) * n] for b in range(BATCHES)]
    c.send(enc("SCRIPT", "LOAD", SHIP))
    sha = c.read().decode()
    c.send(enc("FLUSHALL"))
    c.read()
    used = []
    start = c.cpu()
    for b, batch in enumerate(batches):
        c.send(enc("EVALSHA", sha, 2, "pos:a", "pixel:a", b * n, (b + 1) * n, "list", "", "", 1, "hold", n, *batch))
        assert c.read()[0] == b"ok"
    used.append(c.cpu() - start)
    start = c.cpu()
    for b, batch in enumerate(batches):
        c.send(enc("MULTI"), enc("LPUSH", "pixel:b", *batch),
               enc("EVAL", CHECK, 2, "pos:b", "pixel:b", b * n, (b + 1) * n, n), enc("EXEC"))
        c.read(), c.read(), c.read()
        assert c.read()[1][0] == b"ok"
    used.append(c.cpu() - start)
    start = c.cpu()
    for batch in batches:
        c.send(enc("LPUSH", "pixel:c", *batch))
        c.read()
    used.append(c.cpu() - start)
    for key in (b"pixel:a", b"pixel:b", b"pixel:c"):
        c.send(enc("LLEN", key))
        assert int(c.read()) == n * BATCHES
    per = [f"{u * 1e6 / (n * BATCHES):.3f}" for u in used]
    print(f"{n:>8} {per[0]:>12} {per[1]:>20} {per[2]:>12}")


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [40, 300, 3000]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                c = Conn(port)
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("redis-server did not start")
        print("Redis CPU per record (µs), one batch per round trip:")
        print(f"{'batch':>8} {'ship.lua':>12} {'MULTI+LPUSH+check':>20} {'bare LPUSH':>12}")
        for n in sizes:
            measure(c, n)
    finally:
        redis.kill()
        redis.wait()


main()
