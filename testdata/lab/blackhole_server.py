#!/usr/bin/env python3
"""HTTP/1.1 keep-alive server for the staleconn blackhole lab (stdlib only).

Two ports on --host, one thread per connection, no idle timeout of its own (like a
server whose keep-alive outlasts the middlebox's: Envoy's 1 h, Go with no
IdleTimeout), so every close in the captures comes from the client:
  --port       answers every request at once (a 320-byte text body)
  --slow-port  a slow server: the kernel acknowledges the request at once, the
               handler thinks --think seconds, then answers
  --lonely-port  optional third port, answering at once like --port (blackhole.sh
               BH_SHORT=1: a server only one client talks to)
One line per request goes to --log (stderr when not given).
"""
import argparse, http.server, socketserver, sys, threading, time

P = argparse.ArgumentParser()
P.add_argument("--host", required=True)
P.add_argument("--port", type=int, default=8090)
P.add_argument("--slow-port", type=int, default=8091)
P.add_argument("--lonely-port", type=int)
P.add_argument("--think", type=float, default=20.0)
P.add_argument("--log")
A = P.parse_args()
LOG = open(A.log, "a", buffering=1) if A.log else sys.stderr
BODY = (b"staleconn blackhole lab\n" * 14)[:319] + b"\n"


def handler(think):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"     # keep-alive, no idle timeout (timeout = None)

        def do_GET(self):
            if think:
                time.sleep(think)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, fmt, *args):
            LOG.write("%.6f %s:%d %s\n" % (time.time(), self.client_address[0],
                                           self.client_address[1], fmt % args))
    return Handler


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # HTTPServer's own looks the host's name up (socket.getfqdn): in a namespace with
        # no resolver that can take seconds a port, and the lab waits 10 s at most.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


PORTS = [(A.port, 0.0), (A.slow_port, A.think)] + ([(A.lonely_port, 0.0)] if A.lonely_port else [])
servers = [Server((A.host, port), handler(think)) for port, think in PORTS]
for s in servers:
    s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("listening on " + " and ".join("%s:%d" % (A.host, port) for port, _ in PORTS), flush=True)
threading.Event().wait()
