#!/usr/bin/env python3
"""serve-attack.py: hostile and well-behaved HTTP clients of reco-serve on the loopback, for the attack tests and their before/after numbers.

  serve-attack.py steady PORT SECONDS RATE
      the well-behaved client: GET /recommend at RATE per second (open
      loop: each on a new connection of its own, 2 s at most), for SECONDS; prints one JSON line: requests, ok
      (status 200), rate (ok / requests), p50_ms, p99_ms, max_ms, codes.
  serve-attack.py slowbody PORT SECONDS CONNS [SRC]
      CONNS connections each POSTing a 60000-byte body a byte every 0.5 to
      2 s, opened again when closed; prints the answers' status counts.
  serve-attack.py slowloris PORT SECONDS CONNS [SRC]
      CONNS connections each sending a request header a byte every 0.5 s,
      opened again when closed.
  serve-attack.py edges PORT SECONDS
      the protocol edges in a loop: bytes that are not HTTP, a 505, a
      request line and headers too long, a NUL in an id, a repeated
      parameter; prints the status counts.
  serve-attack.py raw PORT HEX [TIMEOUT]
      send the bytes HEX on one connection; print what came back (as
      Python bytes) and the seconds until the server closed or TIMEOUT.

SRC is a loopback source address (such as 127.0.0.2) for the hostile
connections, so that a per-client limit tells them from the steady
client on 127.0.0.1. Every loop is bounded by SECONDS.
"""
import json
import random
import selectors
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def connect(port, src=None, timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((HOST, port))
    return s


def status_of(data):
    if data.startswith(b"HTTP/1."):
        try:
            return int(data[9:12])
        except ValueError:
            return 0
    return 0


def read_answer(s):
    """Read one answer (headers and a Content-Length body); return its
    status, or 0 on a close without an answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            return status_of(data)
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        b = s.recv(65536)
        if not b:
            break
        body += b
    return status_of(head)


def steady(port, seconds, rate):
    """Open loop: a request every 1/rate s, each in its own thread, so
    that a slow answer does not hide the ones that would have followed."""
    lat, codes = [], {}
    lock = threading.Lock()
    users = 9

    def one(k):
        t0 = time.time()
        code = 0
        try:
            s = connect(port, timeout=2.0)
            req = ("GET /recommend?user=u%d&n=3 HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\n\r\n" % (k % users + 1))
            s.sendall(req.encode())
            code = read_answer(s)
            s.close()
        except OSError:
            code = 0
        with lock:
            lat.append((time.time() - t0) * 1000)
            codes[code] = codes.get(code, 0) + 1

    threads = []
    t_start = time.time()
    k = 0
    while time.time() < t_start + seconds:
        t = threading.Thread(target=one, args=(k,))
        t.start()
        threads.append(t)
        k += 1
        pause = t_start + k / rate - time.time()
        if pause > 0:
            time.sleep(pause)
    for t in threads:
        t.join()
    lat.sort()
    n = len(lat)
    ok = codes.get(200, 0)

    def q(f):
        return round(lat[min(n - 1, int(f * n))], 1) if n else 0

    print(json.dumps({"requests": n, "ok": ok,
                      "rate": round(ok / n, 4) if n else 0,
                      "p50_ms": q(0.5), "p99_ms": q(0.99),
                      "max_ms": round(lat[-1], 1) if n else 0,
                      "codes": {str(c): v for c, v in sorted(codes.items())}}))


def hostile(port, seconds, conns, src, first, step, gap):
    """Keep conns connections sending first, then step a byte at a time
    every gap() seconds; count how each ends."""
    sel = selectors.DefaultSelector()
    t_end = time.time() + seconds
    codes = {}
    lock = threading.Lock()
    state = {}

    def opened():
        try:
            s = connect(port, src, timeout=1.0)
            s.sendall(first)
            s.setblocking(False)
        except OSError:
            with lock:
                codes["refused"] = codes.get("refused", 0) + 1
            return
        state[s] = [time.time() + gap(), b""]
        sel.register(s, selectors.EVENT_READ)

    def closed(s, data):
        code = status_of(data)
        key = str(code) if code else "closed"
        codes[key] = codes.get(key, 0) + 1
        sel.unregister(s)
        del state[s]
        s.close()

    for _ in range(conns):
        opened()
    while time.time() < t_end:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                b = s.recv(65536)
            except OSError:
                b = b""
            if b:
                state[s][1] += b
                if b"\r\n\r\n" in state[s][1]:
                    closed(s, state[s][1])
            else:
                closed(s, state[s][1])
        now = time.time()
        for s, st in list(state.items()):
            if now >= st[0]:
                try:
                    s.send(step)
                except OSError:
                    closed(s, st[1])
                    continue
                st[0] = now + gap()
        while len(state) < conns and time.time() < t_end:
            n = len(state)
            opened()
            if len(state) == n:
                time.sleep(0.05)
                break
    for s in list(state):
        s.close()
    print(json.dumps({"ends": codes}))


def edges(port, seconds):
    cases = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /recommend?user=" + b"x" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /recommend?user=u1 HTTP/1.1\r\nHost: x\r\nX-A: " + b"y" * 20000 + b"\r\n\r\n",
        b"GET /recommend?user=u1%00x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /recommend?user=u1&n=2&n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /recommend?user=u1&" + b"&".join(b"context=i%d" % i for i in range(1001))
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    t_end = time.time() + seconds
    codes = {}
    k = 0
    while time.time() < t_end:
        data = cases[k % len(cases)]
        k += 1
        try:
            s = connect(port, timeout=3.0)
            s.sendall(data)
            code = read_answer(s)
            s.close()
        except OSError:
            code = 0
        codes[str(code)] = codes.get(str(code), 0) + 1
    print(json.dumps({"ends": codes}))


def raw(port, hexdata, timeout):
    s = connect(port, timeout=timeout)
    s.sendall(bytes.fromhex(hexdata))
    t0 = time.time()
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    print(repr(out))
    print("%.2f" % (time.time() - t0))


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd, port = a[0], int(a[1])
    if cmd == "steady":
        steady(port, float(a[2]), float(a[3]))
    elif cmd == "slowbody":
        hostile(port, float(a[2]), int(a[3]), a[4] if len(a) > 4 else None,
                b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{",
                b" ", lambda: random.uniform(0.5, 2.0))
    elif cmd == "slowloris":
        hostile(port, float(a[2]), int(a[3]), a[4] if len(a) > 4 else None,
                b"GET /recommend?user=u1 HTTP/1.1\r\nHost: x\r\n",
                b"X", lambda: 0.5)
    elif cmd == "edges":
        edges(port, float(a[2]))
    elif cmd == "raw":
        raw(port, a[2], float(a[3]) if len(a) > 3 else 5.0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    random.seed(7)
    main()
