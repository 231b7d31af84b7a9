#!/usr/bin/env python3
"""Soak traffic for staleconn's live capture, run inside a network namespace on 127.0.0.1.

For DURATION seconds (bounded; default 1800):
  * steady short connections: one every 20 ms to a server that closes keep-alive
    connections idle for 1 s: request, response, close (about 50 flows/s);
  * every 30 s one pooled client that reuses its connection after 1.4 s: a keep-alive
    race (flagged);
  * LONG_IDLE clients that hold a connection to a server with no idle timeout, idle
    60-400 s between requests: the open idle flows a NAT reset needs kept.
Prints a line of totals at the end.
"""
import http.client
import http.server
import random
import sys
import threading
import time

SHORT_PORT, LONG_PORT = 18080, 18081
DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 1800.0
LONG_IDLE = 6
random.seed(7)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"soak\n" * 40
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ShortKeepalive(Handler):
    timeout = 1.0


def serve(port, handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


totals = {"short": 0, "race": 0, "long_requests": 0, "errors": 0}
lock = threading.Lock()
end = time.monotonic() + DURATION


def count(key):
    with lock:
        totals[key] += 1


def get(conn):
    conn.request("GET", "/")
    conn.getresponse().read()


def race_once():
    conn = http.client.HTTPConnection("127.0.0.1", SHORT_PORT, timeout=5)
    try:
        get(conn)
        time.sleep(1.4)
        get(conn)
    except Exception:
        count("race")
    finally:
        conn.close()


def long_idle_client():
    while time.monotonic() < end:
        conn = http.client.HTTPConnection("127.0.0.1", LONG_PORT, timeout=5)
        try:
            get(conn)
            count("long_requests")
            while time.monotonic() < end:
                time.sleep(min(random.uniform(60, 400), max(0.0, end - time.monotonic())))
                if time.monotonic() >= end:
                    break
                get(conn)
                count("long_requests")
        except Exception:
            count("errors")
        finally:
            conn.close()


def main():
    serve(SHORT_PORT, ShortKeepalive)
    serve(LONG_PORT, Handler)
    for _ in range(LONG_IDLE):
        threading.Thread(target=long_idle_client, daemon=True).start()
    next_race = time.monotonic() + 30
    while time.monotonic() < end:
        conn = http.client.HTTPConnection("127.0.0.1", SHORT_PORT, timeout=5)
        try:
            get(conn)
            count("short")
        except Exception:
            count("errors")
        finally:
            conn.close()
        if time.monotonic() >= next_race:
            next_race += 30
            threading.Thread(target=race_once, daemon=True).start()
        time.sleep(0.02)
    time.sleep(3)
    print(totals, flush=True)


if __name__ == "__main__":
    main()
