#!/usr/bin/env python3
"""Idle-blackhole clients for the staleconn lab (stdlib only).

Plain-HTTP connections in parallel, each from a fixed client port, through a
router that forgets connections idle longer than its conntrack established
timeout (240 s in blackhole.sh, Azure Load Balancer's default) and DROPs their
later packets without a word. Each connection: GET, read the answer, sleep
IDLE, GET again on the same connection (http.client reuses it without
checking), then close.

  ctl_A   idle 200 s (below the router's timeout): answered
  bh_fin  idle 280 s: the request is dropped; read timeout 20 s, then close():
          the FIN is queued behind the unacknowledged request
  bh_rst  idle 280 s: dropped; read timeout 20 s, then close() with
          SO_LINGER 0: an RST, dropped too
  bh_uto  idle 280 s: dropped; TCP_USER_TIMEOUT 20 s, so the kernel gives up
          on its own (ETIMEDOUT) and sends nothing
  ka_C    SO_KEEPALIVE, TCP_KEEPIDLE=TCP_KEEPINTVL=20 s, idle 280 s: the probes
          keep the router's entry alive; answered
  slow    to the slow server (20 s think) with a 40 s read timeout: GET, idle
          200 s, GET; both answered after 20 s, the requests acknowledged at once
One JSON line per connection goes to --log.
"""
import argparse, http.client, json, socket, struct, threading, time

P = argparse.ArgumentParser()
P.add_argument("--host", required=True)
P.add_argument("--bind", required=True, help="the client's own address")
P.add_argument("--port", type=int, default=8090)
P.add_argument("--slow-port", type=int, default=8091)
P.add_argument("--log", required=True)
P.add_argument("--scale", type=float, default=1.0,
               help="multiply every idle, wait and timeout (a smoke test)")
P.add_argument("--router-timeout", type=float, help="the router's conntrack timeout, logged")
A = P.parse_args()
LOCK = threading.Lock()
GIVE_UP_S = 20 * A.scale
SHORT_IDLE, LONG_IDLE = 200, 280
KEEPALIVE_S = max(1, int(20 * A.scale))

# name, client port, server port, idle s, read timeout s, how it gives up, TCP keepalive
SCENARIOS = [
    ("ctl_A", 51001, A.port, SHORT_IDLE, GIVE_UP_S, "close", False),
    ("bh_fin", 51002, A.port, LONG_IDLE, GIVE_UP_S, "close", False),
    ("bh_rst", 51003, A.port, LONG_IDLE, GIVE_UP_S, "linger0", False),
    ("bh_uto", 51004, A.port, LONG_IDLE, 3 * GIVE_UP_S, "user_timeout", False),
    ("ka_C", 51005, A.port, LONG_IDLE, GIVE_UP_S, "close", True),
    ("slow", 51006, A.slow_port, SHORT_IDLE, 2 * GIVE_UP_S, "close", False),
]


def get(c, path):
    t = time.monotonic()
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status, round(time.monotonic() - t, 3)


def run(name, lport, sport, idle, read_timeout, give_up, keepalive):
    idle *= A.scale
    c = http.client.HTTPConnection(A.host, sport, timeout=read_timeout,
                                   source_address=(A.bind, lport))
    c.connect()
    s = c.sock
    if keepalive:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_S)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_S)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)
    if give_up == "user_timeout":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(GIVE_UP_S * 1000))
    first = get(c, "/%s/first" % name)
    t_resp = time.monotonic()
    time.sleep(max(0.0, t_resp + idle - time.monotonic()))
    t_req = time.monotonic()
    try:
        status, took = get(c, "/%s/second" % name)
        outcome = "ok %d after %.3f s" % (status, took)
    except Exception as e:
        outcome = "%s: %s after %.3f s" % (type(e).__name__, e, time.monotonic() - t_req)
    time.sleep(0.3)
    if give_up == "linger0":
        try:   # on the socket itself: http.client may have let go of it
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError as e:
            outcome += "; SO_LINGER: %s" % e
    c.close()
    s.close()
    with LOCK, open(A.log, "a") as f:
        f.write(json.dumps(dict(proto="blackhole", role=name, idle=idle, keepalive=keepalive,
                                give_up=give_up, read_timeout=read_timeout,
                                router_timeout=A.router_timeout, laddr=A.bind,
                                lport=lport, sport=sport, first=first,
                                slept=round(t_req - t_resp, 3), outcome=outcome)) + "\n")


ts = [threading.Thread(target=run, args=a) for a in SCENARIOS]
for t in ts:
    t.start(); time.sleep(0.2)
for t in ts:
    t.join((LONG_IDLE + 120) * max(A.scale, 0.01) + 60)
