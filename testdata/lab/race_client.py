#!/usr/bin/env python3
"""Race-sweep client for the staleconn lab (stdlib only).

Runs inside the client namespace.  For one protocol (plain | tls12 | tls13) it
opens, in parallel:
  * one http.client connection per IDLE value: GET, read, sleep IDLE, GET again
    on the same connection (http.client does not check the socket before
    reusing it), record what happened;
  * benign flows: clean (3 requests, client closes), idle_closed (1 request,
    wait 7 s, client closes after the server's idle close), conn_close
    (request with "Connection: close"), refused (connect to a closed port),
    ipv6 (plain only: 2 requests over IPv6, client closes), and at the end
    open_at_end (1 request, then the connection is held open while the lab
    stops the capture).
Every flow is logged as one JSON line (local port, role, idle, outcome) to
--log, which measure.py joins with the captures.
"""
import argparse, http.client, json, socket, ssl, threading, time, os, sys

P = argparse.ArgumentParser()
P.add_argument("--proto", required=True, choices=["plain", "tls12", "tls13"])
P.add_argument("--host", required=True)
P.add_argument("--host6", default="")
P.add_argument("--port", type=int, required=True)
P.add_argument("--refused-port", type=int, required=True)
P.add_argument("--idles", default="4.90,4.94,4.96,4.97,4.98,4.99,5.01,5.03,5.10,5.50")
P.add_argument("--log", required=True)
P.add_argument("--ready", required=True, help="file written when the capture may stop")
P.add_argument("--stopped", required=True, help="file the lab writes after stopping the capture")
A = P.parse_args()

T0 = time.monotonic()
LOCK = threading.Lock()
LOGF = open(A.log, "a")


def log(**kw):
    kw.setdefault("proto", A.proto)
    kw["t"] = round(time.monotonic() - T0, 4)
    with LOCK:
        LOGF.write(json.dumps(kw) + "\n")
        LOGF.flush()


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_2 if A.proto == "tls12" else ssl.TLSVersion.TLSv1_3
    c.minimum_version = c.maximum_version = v
    return c


def conn(host=None):
    host = host or A.host
    if A.proto == "plain":
        return http.client.HTTPConnection(host, A.port, timeout=10)
    return http.client.HTTPSConnection(host, A.port, timeout=10, context=ctx())


def lport(c):
    try:
        n = c.sock.getsockname()
        return n[0], n[1]
    except Exception:
        return None, None


def get(c, path, headers=None):
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    return r.status, len(body)


def sweep(idle, delay):
    time.sleep(delay)
    c = conn()
    c.connect()
    addr, port = lport(c)
    st1 = get(c, "/first?idle=%.2f" % idle)
    t_resp = time.monotonic()
    # sleep until exactly IDLE after the first response was read
    time.sleep(max(0.0, t_resp + idle - time.monotonic()))
    t_req = time.monotonic()
    try:
        st2 = get(c, "/second?idle=%.2f" % idle)
        outcome = "ok %s" % (st2,)
    except Exception as e:  # RemoteDisconnected, ConnectionResetError, ...
        outcome = "%s: %s" % (type(e).__name__, e)
    log(role="sweep", idle=idle, laddr=addr, lport=port, first=str(st1),
        slept=round(t_req - t_resp, 4), outcome=outcome)
    c.close()


def clean():
    c = conn(); c.connect(); addr, port = lport(c)
    res = []
    for i in range(3):
        res.append(get(c, "/clean/%d" % i)); time.sleep(0.2)
    c.close()
    log(role="clean", laddr=addr, lport=port, outcome="ok %s" % res)


def clean6():
    c = conn(A.host6); c.connect(); addr, port = lport(c)
    res = [get(c, "/v6/%d" % i) for i in range(2)]
    c.close()
    log(role="clean6", laddr=addr, lport=port, outcome="ok %s" % res)


def idle_closed():
    c = conn(); c.connect(); addr, port = lport(c)
    st = get(c, "/idle-closed")
    time.sleep(7.0)         # server closes at 5 s; nobody reuses the connection
    c.close()
    log(role="idle_closed", laddr=addr, lport=port, outcome="ok %s, closed after 7 s" % (st,))


def conn_close():
    c = conn(); c.connect(); addr, port = lport(c)
    st = get(c, "/conn-close", {"Connection": "close"})
    time.sleep(0.5)
    c.close()
    log(role="conn_close", laddr=addr, lport=port, outcome="ok %s" % (st,))


def refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    try:
        s.connect((A.host, A.refused_port)); out = "connected?!"
    except Exception as e:
        out = type(e).__name__
    s.close()
    log(role="refused", laddr=None, lport=port, outcome=out)


threads = []
def start(fn, *a):
    t = threading.Thread(target=fn, args=a, daemon=True); t.start(); threads.append(t)

start(clean)
start(refused)
start(conn_close)
start(idle_closed)
if A.host6:
    start(clean6)
for i, idle in enumerate(float(x) for x in A.idles.split(",")):
    start(sweep, idle, 0.3 + 0.15 * i)   # staggered so the closes do not coincide
deadline = time.monotonic() + 30
for t in threads:
    t.join(max(0.1, deadline - time.monotonic()))

# open_at_end: one request, then keep the connection open while the capture stops
c = conn(); c.connect(); addr, port = lport(c)
st = get(c, "/open-at-end")
log(role="open_at_end", laddr=addr, lport=port, outcome="ok %s" % (st,))
time.sleep(0.5)
open(A.ready, "w").write("ready\n")
for _ in range(100):                     # at most 10 s (nginx closes it at 5 s)
    if os.path.exists(A.stopped):
        break
    time.sleep(0.1)
c.close()
LOGF.close()
