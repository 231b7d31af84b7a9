#!/usr/bin/env python3
"""NAT idle-reset client for the staleconn lab (stdlib only).

Three plain-HTTP connections in parallel to the keepalive_timeout 1800s server
through the MASQUERADE router (conntrack established timeout 350 s):
  A  idle 300 s, then a request on the same connection (should work)
  B  idle 380 s, then a request (the router has forgotten the mapping and
     answers the request with an RST)
  C  SO_KEEPALIVE with TCP_KEEPIDLE=60 / TCP_KEEPINTVL=60, idle 380 s, then a
     request (keepalive probes keep the mapping alive: should work)
Each then closes its socket.  One JSON line per flow goes to --log.
"""
import argparse, http.client, json, socket, threading, time

P = argparse.ArgumentParser()
P.add_argument("--host", required=True)
P.add_argument("--port", type=int, default=8080)
P.add_argument("--log", required=True)
P.add_argument("--scale", type=float, default=1.0, help="multiply idle times (testing)")
A = P.parse_args()
LOCK = threading.Lock()


def run(name, idle, keepalive):
    idle *= A.scale
    c = http.client.HTTPConnection(A.host, A.port, timeout=15)
    c.connect()
    if keepalive:
        s = c.sock
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)
    addr, port = c.sock.getsockname()[:2]
    c.request("GET", "/nat/%s/first" % name)
    r = c.getresponse(); r.read()
    t_resp = time.monotonic()
    time.sleep(max(0.0, t_resp + idle - time.monotonic()))
    t_req = time.monotonic()
    try:
        c.request("GET", "/nat/%s/second" % name)
        r2 = c.getresponse(); r2.read()
        outcome = "ok %d" % r2.status
    except Exception as e:
        outcome = "%s: %s" % (type(e).__name__, e)
    time.sleep(0.3)
    c.close()
    with LOCK, open(A.log, "a") as f:
        f.write(json.dumps(dict(proto="nat", role="nat_" + name, idle=idle, keepalive=keepalive,
                                laddr=addr, lport=port, slept=round(t_req - t_resp, 3),
                                outcome=outcome)) + "\n")


ts = [threading.Thread(target=run, args=a) for a in
      (("A", 300, False), ("B", 380, False), ("C", 380, True))]
for t in ts:
    t.start(); time.sleep(0.2)
for t in ts:
    t.join(420 * max(A.scale, 0.01) + 30)
