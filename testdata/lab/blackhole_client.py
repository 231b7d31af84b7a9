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
With --short (blackhole.sh BH_SHORT=1: the router forgets after 30 s), a shorter
silence, corroborated by another connection answered meanwhile:
  bh_short   idle 45 s: dropped; read timeout 20 s, then close() (the FIN queued
             behind the request, as bh_fin)
  busy       a second connection to the same server, opened 3 s after bh_short's
             first request: GET every 4 s (never idle long enough to be forgotten)
             until 6 s after bh_short gave up; answered while bh_short's request is
             being retransmitted
  ctl_short  idle 20 s (below the router's 30 s): answered
  bh_lonely  to --lonely-port (a server port nobody else talks to), idle 45 s:
             dropped; TCP_USER_TIMEOUT 20 s; no other connection to that server
             is answered meanwhile
One JSON line per connection goes to --log.
"""
import argparse, http.client, json, socket, struct, threading, time

P = argparse.ArgumentParser()
P.add_argument("--host", required=True)
P.add_argument("--bind", required=True, help="the client's own address")
P.add_argument("--port", type=int, default=8090)
P.add_argument("--slow-port", type=int, default=8091)
P.add_argument("--lonely-port", type=int, default=8092)
P.add_argument("--short", action="store_true",
               help="the corroborated short-silence scenarios (router timeout 30 s)")
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
BH_SHORT_IDLE, CTL_SHORT_IDLE = 45, 20
BUSY_DELAY, BUSY_EVERY, BUSY_AFTER = 3, 4, 6
if A.short:
    LONG_IDLE = BH_SHORT_IDLE
    SCENARIOS = [
        ("bh_short", 51101, A.port, BH_SHORT_IDLE, GIVE_UP_S, "close", False),
        ("busy", 51102, A.port, BUSY_EVERY, GIVE_UP_S, "busy", False),
        ("ctl_short", 51103, A.port, CTL_SHORT_IDLE, GIVE_UP_S, "close", False),
        ("bh_lonely", 51104, A.lonely_port, BH_SHORT_IDLE, 3 * GIVE_UP_S, "user_timeout", False),
    ]


def get(c, path):
    t = time.monotonic()
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status, round(time.monotonic() - t, 3)


def log_line(**kw):
    with LOCK, open(A.log, "a") as f:
        f.write(json.dumps(dict(proto="blackhole", router_timeout=A.router_timeout,
                                laddr=A.bind, **kw)) + "\n")


def busy(name, lport, sport, every, read_timeout):
    """GET every EVERY s on one connection, from BUSY_DELAY s after bh_short's first
    request until BUSY_AFTER s after bh_short gave up (a bounded count), then close."""
    time.sleep(BUSY_DELAY * A.scale)
    every *= A.scale
    n = int((BH_SHORT_IDLE + GIVE_UP_S / A.scale + BUSY_AFTER - BUSY_DELAY) / BUSY_EVERY) + 1
    c = http.client.HTTPConnection(A.host, sport, timeout=read_timeout,
                                   source_address=(A.bind, lport))
    c.connect()
    t0 = time.monotonic()
    first, ok, outcome = None, 0, None
    for i in range(n):
        time.sleep(max(0.0, t0 + i * every - time.monotonic()))
        try:
            status, took = get(c, "/%s/%d" % (name, i + 1))
        except Exception as e:
            outcome = "%s: %s at request %d" % (type(e).__name__, e, i + 1)
            break
        first = first or [status, took]
        ok += status == 200
    time.sleep(0.3)
    c.close()
    log_line(role=name, idle=every, keepalive=False, give_up="close",
             read_timeout=read_timeout, lport=lport, sport=sport, first=first,
             requests=n, outcome=outcome or "ok %d of %d answered, every %.1f s" % (ok, n, every))


def run(name, lport, sport, idle, read_timeout, give_up, keepalive):
    if give_up == "busy":
        return busy(name, lport, sport, idle, read_timeout)
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
    log_line(role=name, idle=idle, keepalive=keepalive, give_up=give_up,
             read_timeout=read_timeout, lport=lport, sport=sport, first=first,
             slept=round(t_req - t_resp, 3), outcome=outcome)


ts = [threading.Thread(target=run, args=a) for a in SCENARIOS]
for t in ts:
    t.start(); time.sleep(0.2)
for t in ts:
    t.join((LONG_IDLE + 120) * max(A.scale, 0.01) + 60)
