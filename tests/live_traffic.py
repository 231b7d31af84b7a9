#!/usr/bin/env python3
"""Real traffic for the live-capture tests, run inside a network namespace the test made.

Two HTTP/1.1 servers on 127.0.0.1 (Python's http.server, real kernel TCP):
  SHORT_PORT  closes a keep-alive connection idle for KEEPALIVE_S (like nginx keepalive_timeout)
  LONG_PORT   keeps connections open
and three pooled clients (http.client, which reuses a connection without checking it):
  ok     request, 0.2 s idle, request, close               -> completed
  race   request, idle past the server's timeout, request  -> keepalive_race (sent after the FIN)
  nat    request; then an iptables rule answers this connection's next data packet with
         RST, as a NAT that forgot the mapping does; NAT_IDLE_S idle, request
                                                           -> nat_idle_reset (with --nat-idle 2s)
Prints one JSON line per client with what it saw. Bounded: every step has a timeout and the
whole run takes about 4 s.
"""
import http.client
import http.server
import json
import subprocess
import sys
import threading
import time

SHORT_PORT, LONG_PORT = 18080, 18081
KEEPALIVE_S = 1.0
NAT_IDLE_S = 2.6


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"staleconn live test\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ShortKeepalive(Handler):
    # An idle keep-alive connection is closed after this long (FIN), as nginx does.
    timeout = KEEPALIVE_S


def serve(port, handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def exchange(conn):
    conn.request("GET", "/")
    response = conn.getresponse()
    return response.status, len(response.read())


def client(name, port, idle, before_idle=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    result = {"client": name}
    try:
        result["first"] = exchange(conn)
        result["port"] = conn.sock.getsockname()[1]
        if before_idle:
            before_idle(result["port"])
        time.sleep(idle)
        result["second"] = exchange(conn)
    except Exception as e:  # the failures are the point
        result["error"] = type(e).__name__
    finally:
        conn.close()
    return result


def forget_connection(client_port):
    # Answer this connection's next data packet with RST, before the server sees it.
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--sport", str(client_port), "--dport",
            str(LONG_PORT), "--tcp-flags", "PSH", "PSH", "-j", "REJECT", "--reject-with",
            "tcp-reset"]
    subprocess.run(["iptables", "-A"] + rule, check=True, timeout=10)


def main():
    serve(SHORT_PORT, ShortKeepalive)
    serve(LONG_PORT, Handler)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(client("ok", SHORT_PORT, 0.2))),
        threading.Thread(target=lambda: results.append(client("race", SHORT_PORT, KEEPALIVE_S + 0.4))),
        threading.Thread(target=lambda: results.append(
            client("nat", LONG_PORT, NAT_IDLE_S, before_idle=forget_connection))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    for r in results:
        print(json.dumps(r))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
