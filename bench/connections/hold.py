"""Opens N keep-alive connections to 127.0.0.1:PORT, makes one request on each (so the
server has served it and is now waiting for the next), then holds them idle.

    hold.py PORT N

Prints `ready OK` once all N have their answer (OK = how many got a 200), then waits for a
line on stdin, closes them all, and prints `closed`.
"""
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
request = b"GET /pixel.gif?hold=1 HTTP/1.1\r\nHost: bench\r\n\r\n"


def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


conns, ok = [], 0
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(request)
    ok += answer(s)
    conns.append(s)
print("ready", ok, flush=True)
sys.stdin.readline()
for s in conns:
    s.close()
print("closed", flush=True)
