#!/usr/bin/env python3
"""HTTP clients for the metrics tests (tests/metrics.rs), run inside the test's network
namespace, where staleconn's --metrics-listen and Prometheus listen on its loopback.

  get URL [ACCEPT]   prints the body of one GET (exit 1 on a status other than 200)
  bad HOST PORT      the bad clients: idle connections, malformed and oversized requests
                     and a scrape flood; prints one JSON object with what each got
Bounded: every socket has a timeout, every loop a count.
"""
import json
import socket
import sys
import threading
import time
import urllib.request

IDLE = 200
FLOOD_THREADS = 8
FLOOD_EACH = 60
TIMEOUT_S = 10


def get(url, accept=None):
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        sys.stdout.write(response.read().decode())


def exchange(host, port, data):
    """Sends data, reads to the close: the status line, or 'closed' if none came."""
    s = socket.create_connection((host, port), timeout=TIMEOUT_S)
    try:
        s.sendall(data)
    except OSError:
        pass
    got = b""
    try:
        while len(got) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    s.close()
    return got.split(b"\r\n", 1)[0].decode(errors="replace") if got else "closed"


def status_code(line):
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def bad(host, port):
    port = int(port)
    result = {}

    # Idle connections: opened, never written to. Each must be closed by the server
    # (at once past its connection cap, or at its deadline), never held open.
    idle = []
    for _ in range(IDLE):
        try:
            idle.append(socket.create_connection((host, port), timeout=TIMEOUT_S))
        except OSError:
            break
    result["idle_opened"] = len(idle)
    started = time.monotonic()
    closed = 0
    for s in idle:
        try:
            if s.recv(1) == b"":
                closed += 1
        except OSError:
            closed += 1
        s.close()
    result["idle_closed_by_server"] = closed
    result["idle_all_closed_s"] = round(time.monotonic() - started, 2)

    # Malformed and oversized requests: each gets an error status or a close.
    cases = {
        "garbage": b"\x00\x01\x02\xff\xfe\r\n\r\n",
        "no_version": b"GET /metrics\r\n\r\n",
        "post": b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "unknown_path": b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "oversized_header": b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        "endless_line": b"G" * 200_000,
        "half_request": b"GET /metrics HTTP/1.1\r\nHost:",
    }
    result["bad"] = {name: exchange(host, port, data) for name, data in cases.items()}

    # A scrape flood: every answer is a 200 or a close, never a hang.
    counts = {"ok": 0, "closed": 0, "other": 0}
    lock = threading.Lock()

    def flood():
        for _ in range(FLOOD_EACH):
            line = exchange(host, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            key = "ok" if status_code(line) == 200 else "closed" if line == "closed" else "other"
            with lock:
                counts[key] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=flood) for _ in range(FLOOD_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    result["flood"] = counts
    result["flood_s"] = round(time.monotonic() - started, 2)
    result["after"] = exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1] == "get":
        get(*sys.argv[2:])
    elif sys.argv[1] == "bad":
        bad(*sys.argv[2:])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
