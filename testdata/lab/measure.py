#!/usr/bin/env python3
"""Measure the staleconn lab captures and write testdata/expected.tsv.

Reads every *.pcap / *.pcapng in --dir with tshark (so every link type and
file format is decoded by an independent implementation), splits packets into
TCP flows by 4-tuple, classifies each flow from what the capture shows, and
joins it (by client port) with the client scripts' JSON log to describe the
scenario and to cross-check the verdict against what the client experienced.

Definitions (as in expected.tsv's header):
  request_idle_s       ts(first packet carrying the studied request's payload)
                       - ts(last earlier packet in the flow with TCP payload, either direction,
                         the server's TLS close_notify left out)
                       The studied request is the client's last request (the
                       client payload with the highest sequence number; first
                       transmission).  Given for keepalive_race, nat_idle_reset
                       and the NAT flows that worked, '-' otherwise.
  server_close_idle_s  ts(server's first close packet: the TLS close_notify
                       record if any, else the FIN)
                       - ts(last earlier packet in the flow with TCP payload that the server
                         had seen: client data the close does not acknowledge is left out,
                         so a request crossing the close in flight does not hide the timeout)
                       Given for keepalive_race and idle_closed, '-' otherwise.
  retransmissions      idle_blackhole only: how many later client packets carry the
                       studied request's first byte again (seq <= its seq < seq + len)
  retransmission_span_s  idle_blackhole only: ts(the last of them) - ts(the request's
                       first transmission)
idle_blackhole: the studied request got no server packet of any kind after it (no
ACK, no data, no RST), was retransmitted at least once, neither side had sent a FIN
before it, and the silence before it (since the flow's previous packet of any kind)
was over BLACKHOLE_IDLE_S, staleconn's default --blackhole-idle; or, corroborated, the
silence was over CORROBORATED_IDLE_S (20 s) AND at least MIDDLEBOX_IDLE_RTTS (100) x the
handshake RTT (client capture: SYN -> SYN/ACK; server capture: SYN/ACK -> ACK; no
handshake in the capture: no RTT test) AND longer than the longest silence before an
earlier client packet of this flow that a later non-RST server packet followed (a silence
the path survived) AND another flow in the same capture to the same server address:port
got an answer -- a server payload packet acknowledging the end of one of that flow's
unanswered client payloads -- after this request's first transmission and no later than
this flow's last packet (the path worked; this connection's state was forgotten).
A request that meets every idle_blackhole test but the silence is left as the other rules
say (plain HTTP, no FIN/RST from either side: open_at_end); the row says why.
A close_notify is recognised without TLS dissection (so it also works with
-s 96): a server->client segment of <= 40 payload bytes on a TLS port that is
followed by the server's FIN within 100 ms with no other server data between.

lab/clients.sh's captures (server ports 9080, 9443-9447; its client log and the
servers' access logs are read from DIR/lab/last-run-clients/ whatever --clients says):
  * HTTP/2: the server's close starts at its GOAWAY (h2c: tshark's http2 dissector;
    TLS: a short record within 20 ms before the close_notify and FIN), so the GOAWAY is
    neither activity in the idle times nor an answer;
  * a server segment answers the request only if its ack covers the request's last
    byte; a request the server acknowledged before its close is no race (an HTTP/2
    control frame needs no answer); h2c client packets without HEADERS or DATA are not
    requests;
  * the client's own close records (close_notify, RST_STREAM, GOAWAY: <= 40-byte records
    within 20 ms before its FIN, or sent after it had the server's close) are not
    requests, and the server's close is found past the client's reply to it; who closed
    first is judged by each side's first close packet;
  * a request written in several segments starts at its first segment;
  * flows are joined with the client log by lport / lport2, else through the access log
    by the URL path /sweep/IDLE/N; a failure on the wire that the client retried on a
    new connection is consistent (marked with that connection's port).
These rules leave every row of the run.sh and blackhole.sh captures as it was.

usage: measure.py --dir testdata --clients testdata/lab/last-run/clients.jsonl
                  [--clients testdata/lab/last-run-blackhole/clients.jsonl]
                  --out testdata/expected.tsv [--delay-ms 25]
"""
import argparse, collections, glob, json, os, statistics, subprocess, sys
from decimal import Decimal

TLS_PORTS = {443, 8443}
BLACKHOLE_PORTS = {8090, 8091, 8092}   # 8092: blackhole.sh BH_SHORT=1's lonely server
# lab/clients.sh (real clients): nginx 9443 TLS 1.3, 9444 TLS 1.2, 9445 TLS 1.3 + HTTP/2,
# 9080 h2c, 9447 TLS 1.3 with a 1800 s idle timeout (NAT run); HAProxy 9446 TLS 1.3
CLIENTS_PORTS = {9443: "tls13", 9444: "tls12", 9445: "tls13 h2", 9080: "h2c",
                 9446: "haproxy tls13", 9447: "nat60 tls13"}
TLS_PORTS |= {9443, 9444, 9445, 9446, 9447}
H2_PORTS = {9445, 9080}          # HTTP/2: the server's close starts at its GOAWAY
H2C_PORTS = {9080}               # cleartext: the GOAWAY is found by tshark's http2 dissector
H2_CLOSE_MAX = 64                # a GOAWAY record (TLS 1.3: 39 bytes) + close_notify (24)
SERVER_PORTS = {80, 81, 443, 444, 8443, 8444, 8080} | BLACKHOLE_PORTS | set(CLIENTS_PORTS)
BLACKHOLE_IDLE_S = Decimal(60)
CORROBORATED_IDLE_S = Decimal(20)     # staleconn's default, with another flow answered meanwhile
MIDDLEBOX_IDLE_RTTS = 100
BURST_GAP_S = Decimal("0.5")
FIELDS = ["frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst",
          "tcp.dstport", "tcp.len", "tcp.flags", "ip.ttl", "ipv6.hlim", "tcp.seq",
          "frame.number", "tcp.ack"]


def read(path):
    cmd = ["tshark", "-n", "-r", path, "-Y", "tcp", "-T", "fields", "-E", "separator=\t",
           "-o", "tcp.relative_sequence_numbers:TRUE"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    pkts = []
    for line in out.splitlines():
        v = line.split("\t")
        d = dict(zip(FIELDS, v))
        src = d["ip.src"] or d["ipv6.src"]
        dst = d["ip.dst"] or d["ipv6.dst"]
        # tunnelled/ICMP-quoted packets can list two addresses; keep the outer
        src, dst = src.split(",")[0], dst.split(",")[0]
        ttl = (d["ip.ttl"] or d["ipv6.hlim"]).split(",")[0]
        pkts.append(dict(ts=Decimal(d["frame.time_epoch"]), src=src, sport=int(d["tcp.srcport"]),
                         dst=dst, dport=int(d["tcp.dstport"]), len=int(d["tcp.len"] or 0),
                         flags=int(d["tcp.flags"], 16), ttl=int(ttl) if ttl else None,
                         seq=int(d["tcp.seq"] or 0), n=int(d["frame.number"]),
                         ack=int(d["tcp.ack"] or 0),
                         v6=bool(d["ipv6.src"])))
    return pkts


def h2c_frames(path):
    """On h2c ports, as tshark's http2 dissector (decode-as) finds them: the frame numbers
    of server packets holding a GOAWAY frame, and of client packets holding no HEADERS or
    DATA frame (SETTINGS, WINDOW_UPDATE, PING, RST_STREAM, GOAWAY: not a request)."""
    cmd = ["tshark", "-n", "-r", path]
    for p in sorted(H2C_PORTS):
        cmd += ["-d", "tcp.port==%d,http2" % p]
    cmd += ["-Y", "http2", "-T", "fields", "-E", "separator=\t", "-e", "frame.number",
            "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "http2.type"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    goaway, control = set(), set()
    for line in out.splitlines():
        v = line.split("\t")
        if len(v) < 4:
            continue
        n, sp, dp = int(v[0]), int(v[1]), int(v[2])
        types = {int(t) for t in v[3].split(",") if t}
        if sp in H2C_PORTS and 7 in types:
            goaway.add(n)
        if dp in H2C_PORTS and not types & {0, 1}:
            control.add(n)
    return goaway, control


def ep(addr, port, v6):
    return "[%s]:%d" % (addr, port) if v6 else "%s:%d" % (addr, port)


FIN, SYN, RST, ACK = 1, 2, 4, 16


def flows_of(pkts):
    flows = collections.OrderedDict()
    for p in pkts:
        a, b = (p["src"], p["sport"]), (p["dst"], p["dport"])
        key = tuple(sorted([a, b]))
        f = flows.setdefault(key, dict(pkts=[], client=None))
        f["pkts"].append(p)
        if p["flags"] & SYN and not p["flags"] & ACK and f["client"] is None:
            f["client"] = a
    for key, f in flows.items():
        if f["client"] is None:      # no SYN seen: the well-known port is the server
            a, b = key
            f["client"] = b if a[1] in SERVER_PORTS else a
        f["server"] = key[1] if f["client"] == key[0] else key[0]
        syns = {p["seq"] for p in f["pkts"] if p["flags"] & SYN and not p["flags"] & ACK}
        if len(syns) > 1:
            print("warning: 4-tuple reused in one capture: %s" % (key,), file=sys.stderr)
        for p in f["pkts"]:
            p["dir"] = "c" if (p["src"], p["sport"]) == f["client"] else "s"
    return flows


def f6(x):
    return "%.6f" % x


def answers_of(f):
    """The flow's answers: server payload packets (not RST) whose ack covers the end of a
    client payload not answered before (the client payloads sent before them)."""
    out, pending = [], []
    for p in f["pkts"]:
        if p["dir"] == "c" and p["len"] > 0:
            pending.append(p["seq"] + p["len"])
        elif p["dir"] == "s" and p["len"] > 0 and not p["flags"] & RST and pending:
            if any(e <= p["ack"] for e in pending):
                out.append(p)
                pending = [e for e in pending if e > p["ack"]]
    return out


def handshake_rtt(P, side):
    """client capture: first SYN -> first SYN/ACK; server capture: first SYN/ACK -> the
    client's first packet after it without SYN; None without a handshake"""
    syn = next((p for p in P if p["flags"] & SYN and not p["flags"] & ACK), None)
    sa = next((p for p in P if p["flags"] & SYN and p["flags"] & ACK), None)
    if sa is None:
        return None
    if side == "server":
        ack = next((p for p in P[P.index(sa) + 1:] if p["dir"] == "c" and not p["flags"] & SYN), None)
        return ack["ts"] - sa["ts"] if ack else None
    return sa["ts"] - syn["ts"] if syn else None


def analyse(f, h2c=(frozenset(), frozenset()), side="client", peers=lambda t0, t1: None):
    """peers(t0, t1): an answer on another flow to the same server in (t0, t1], as
    (flow, packet), else None"""
    goaways, control = h2c
    P = f["pkts"]
    sport = f["server"][1]
    tls = sport in TLS_PORTS
    h2 = sport in H2_PORTS
    r = dict(server_port=sport, tls=tls)
    synack = any(p["flags"] & SYN and p["flags"] & ACK for p in P)
    srv_ttls = [p["ttl"] for p in P if p["dir"] == "s" and not p["flags"] & RST]
    r["srv_ttl"] = collections.Counter(srv_ttls).most_common(1)[0][0] if srv_ttls else None
    rsts = [p for p in P if p["flags"] & RST]
    r["rsts"] = [(p["dir"], p["ttl"]) for p in rsts]
    syn = any(p["flags"] & SYN and not p["flags"] & ACK for p in P)
    # refused: a SYN answered by RST (a capture that began mid-connection has no SYN)
    if syn and not synack and any(p["dir"] == "s" for p in rsts):
        r["verdict"] = "refused"
        return r
    payload = [p for p in P if p["len"] > 0]
    sfin = next((p for p in P if p["dir"] == "s" and p["flags"] & FIN), None)
    cfin = next((p for p in P if p["dir"] == "c" and p["flags"] & FIN), None)
    # server's first close packet: close_notify (TLS) if any, else the FIN; with HTTP/2
    # the GOAWAY before them (h2c: the dissector's GOAWAY; over TLS: the short record
    # before the close_notify)
    close = sfin
    closing = []            # the server's close records before its FIN (GOAWAY, close_notify)
    if sfin is not None and tls:
        # HTTP/2: nginx writes GOAWAY, close_notify and FIN back to back (tens of
        # microseconds); a short record further from the FIN is a frame such as a
        # WINDOW_UPDATE or RST_STREAM the server sent before the client closed
        lim, win = (H2_CLOSE_MAX, Decimal("0.02")) if h2 else (40, Decimal("0.1"))
        i = P.index(sfin)
        j = i - 1
        cand = None
        while j >= 0:
            q = P[j]
            if q["dir"] == "s" and q["len"] > 0:
                if q["len"] <= lim and sfin["ts"] - q["ts"] <= win:
                    cand = q; closing.insert(0, q); j -= 1; continue
                break
            if q["dir"] == "c" and q["len"] > 0:
                # the client's reply to the server's close record (e.g. Go's crypto/tls
                # answers close_notify with its own before its FIN): a short record right
                # before the client's FIN that acknowledges a short server record sent
                # just before it; walk on
                reply = (q["len"] <= 40 and cfin is not None
                         and q["ts"] <= cfin["ts"] <= q["ts"] + Decimal("0.02")
                         and any(s["dir"] == "s" and 0 < s["len"] <= lim
                                 and s["seq"] + s["len"] <= q["ack"]
                                 and sfin["ts"] - s["ts"] <= win and s["ts"] <= q["ts"]
                                 for s in P[max(0, j - 8):j]))
                if not reply:
                    break
            j -= 1
        if sfin["len"] > 0 and sfin["len"] <= lim:
            cand = cand or sfin
            closing.append(sfin)
        if cand is not None:
            close = cand
            if h2 and len(closing) > 1:
                r["goaway_len"] = closing[0]["len"]
                r["close_notify_len"] = closing[1]["len"]
            else:
                r["close_notify_len"] = cand["len"]
    if sfin is not None and sport in H2C_PORTS:
        ga = [p for p in P if p["dir"] == "s" and p["n"] in goaways and p["ts"] <= sfin["ts"]]
        ga = [p for p in ga if not any(q["dir"] == "s" and q["len"] > 0 and q["n"] not in goaways
                                         and p["ts"] <= q["ts"] <= sfin["ts"] for q in P)]
        if ga:
            close = ga[-1]
            closing = [close]
            r["goaway_len"] = close["len"]
    r["close"] = close

    # The TLS close alert (and HTTP/2 GOAWAY) is not activity either side waits on: left
    # out of idle times.
    alert = set(id(q) for q in closing) if close is not None and close is not sfin else set()

    def last_payload_before(pk, skip=lambda q: False):
        best = None
        for q in payload:
            if q is pk or q["ts"] > pk["ts"] or (q["ts"] == pk["ts"] and q["n"] >= pk["n"]):
                continue
            if id(q) in alert or skip(q):
                continue
            best = q
        return best

    creq = [p for p in payload if p["dir"] == "c"]
    if sport in H2C_PORTS:
        creq = [p for p in creq if p["n"] not in control]
    if tls and cfin is not None:
        # the client's own close (close_notify; HTTP/2: RST_STREAM, GOAWAY) right before its
        # FIN: records of <= 40 bytes within 100 ms before the FIN, no other client data between
        lim = 40
        tail = []
        for q in reversed(P[:P.index(cfin) + 1]):
            if q["dir"] != "c" or q["len"] == 0:
                continue
            if q["len"] <= lim and cfin["ts"] - q["ts"] <= Decimal("0.02") and len(tail) < 2:
                tail.append(id(q)); continue
            break
        creq = [p for p in creq if id(p) not in tail]
        cclose = next((q for q in P if id(q) in tail), None)
    else:
        cclose = None
    cclose = cclose or cfin      # the client's first close packet: its close record, else FIN
    if close is not None and close is not sfin:
        # a short client record sent after the client had the server's close record (its
        # ack covers it): the client's own close_notify or GOAWAY, not a request
        creq = [p for p in creq if not (p["len"] <= 40 and p["ack"] > close["seq"])]
    req = None
    if creq:
        top = max(p["seq"] for p in creq)
        req = next(p for p in creq if p["seq"] == top)   # first transmission
        req_end = req["seq"] + req["len"]
        # a request written in several segments (e.g. the JDK's POST: headers, then the
        # body, in separate TLS records): the studied request starts at the first segment
        # of the burst, the client data right before it in sequence that the client sent
        # with no server data in between
        while True:
            prev = next((p for p in creq if p["seq"] + p["len"] == req["seq"] and p["ts"] <= req["ts"]), None)
            if prev is None or any(q["dir"] == "s" and q["len"] > 0 and prev["ts"] <= q["ts"] <= req["ts"]
                                   for q in payload):
                break
            # ... written together: a client quiet of BURST_GAP_S or more before a segment
            # starts a new burst (an HTTP/2 SETTINGS ACK sent seconds before is not part of
            # the request that follows it)
            if req["ts"] - prev["ts"] >= BURST_GAP_S:
                break
            req = prev
    r["req"] = req
    if req is not None:
        lp = last_payload_before(req)
        r["req_idle"] = (req["ts"] - lp["ts"]) if lp else None
        # an answer: server data that acknowledges the request's last byte
        resp = [p for p in payload if p["dir"] == "s" and p["ts"] >= req["ts"] and p is not close
                and id(p) not in alert and p["ack"] >= req_end
                and not (close is not None and p["ts"] >= close["ts"] and tls and p["len"] <= 40)]
        # ... or a request the server had acknowledged before it closed (an HTTP/2 control
        # frame such as a SETTINGS ACK needs no answer; a request that crossed the close was
        # never acknowledged before it)
        end = req_end
        acked_open = close is not None and any(
            p["dir"] == "s" and p["ack"] >= end and p["ts"] >= req["ts"] and
            (p["ts"], p["n"]) < (close["ts"], close["n"]) and not p["flags"] & RST for p in P)
        r["answered"] = bool(resp) or acked_open
    else:
        r["req_idle"] = None
        r["answered"] = True
    if close is not None:
        # The server's idle as the server saw it: client data its close does not
        # acknowledge had not reached it yet (a request crossing the close in flight).
        lp = last_payload_before(close, skip=lambda q: q["dir"] == "c" and q["seq"] >= close["ack"])
        r["close_idle"] = (close["ts"] - lp["ts"]) if lp else None
    # router-made RST: an RST towards the client whose TTL differs from the server's
    router_rst = [p for p in rsts if p["dir"] == "s" and r["srv_ttl"] is not None
                  and p["ttl"] != r["srv_ttl"]]
    r["router_rst"] = bool(router_rst)
    blackhole = False
    if req is not None and not r["answered"]:
        i = P.index(req)
        before, after = P[:i], P[i + 1:]
        r["req_silence"] = req["ts"] - before[-1]["ts"] if before else Decimal(0)
        retrans = [p for p in after if p["dir"] == "c" and p["len"] > 0
                   and p["seq"] <= req["seq"] < p["seq"] + p["len"]]
        r["retrans"] = retrans
        r["server_after"] = [p for p in after if p["dir"] == "s"]
        r["client_end"] = next((p for p in after if p["dir"] == "c" and p["flags"] & (FIN | RST)), None)
        dropped = (not r["server_after"] and bool(retrans)
                   and not any(p["flags"] & FIN for p in before))
        silence = r["req_silence"]
        blackhole = dropped and silence > BLACKHOLE_IDLE_S
        if dropped and not blackhole:
            # corroborated: a shorter silence, long for the path, longer than any it
            # survived, while another connection to the same server was answered
            rtt = handshake_rtt(P, side)
            last_srv = max((k for k, q in enumerate(before) if q["dir"] == "s"
                            and not q["flags"] & RST), default=-1)
            survived = max((q["ts"] - before[k - 1]["ts"] for k, q in enumerate(before)
                            if 0 < k < last_srv and q["dir"] == "c"), default=Decimal(0))
            peer = peers(req["ts"], P[-1]["ts"])
            why = []
            if not silence > CORROBORATED_IDLE_S:
                why.append("silence <= %s s" % CORROBORATED_IDLE_S)
            if rtt is not None and not silence >= MIDDLEBOX_IDLE_RTTS * rtt:
                why.append("silence < %d RTT (%.1f ms)" % (MIDDLEBOX_IDLE_RTTS, rtt * 1000))
            if not silence > survived:
                why.append("silence <= the longest it survived (%.3f s)" % survived)
            if peer is None:
                why.append("no other connection to this server answered meanwhile")
            r["corroboration"] = dict(rtt=rtt, survived=survived, peer=peer, why=why)
            blackhole = not why
        r["dropped"] = dropped
    if req is not None and not r["answered"] and router_rst and sfin is None:
        r["verdict"] = "nat_idle_reset"
    elif req is not None and not r["answered"] and close is not None:
        r["verdict"] = "keepalive_race"
    elif blackhole:
        r["verdict"] = "idle_blackhole"
    elif sfin is None and cfin is None and not rsts:
        r["verdict"] = "open_at_end"
    elif sfin is not None and (cclose is None or (close["ts"], close["n"]) <= (cclose["ts"], cclose["n"])):
        ci = r.get("close_idle")
        r["verdict"] = "idle_closed" if ci is not None and ci >= 1 else "closed_after_response"
    else:
        r["verdict"] = "completed"
    return r


def log_matches(entry, server_port):
    """A client-log entry describes a flow to server_port: the NAT run used 8080, the
    blackhole run logs its server port, the race phases used the other ports."""
    if entry.get("proto") == "nat":
        return server_port == 8080
    if entry.get("proto") == "blackhole":
        return entry.get("sport") == server_port
    return server_port not in BLACKHOLE_PORTS


def access_log(d):
    """(server port, client port) -> [(ts, method, path)] from the servers' logs of
    lab/clients.sh (nginx: log_format lab; HAProxy: its log-format), for clients that do
    not log their local port. MASQUERADE keeps the client's port."""
    acc = collections.defaultdict(list)
    p = os.path.join(d, "nginx-access.log")
    if os.path.exists(p):
        for line in open(p):
            v = line.split()
            if len(v) < 8 or '"' not in line:
                continue
            req = line.split('"')[1].split()
            if len(req) >= 2:
                acc[(int(v[1]), int(v[3]))].append((Decimal(v[0]), req[0], req[1]))
    p = os.path.join(d, "haproxy.log")
    if os.path.exists(p):
        for line in open(p):
            v = line.split()
            if len(v) >= 6 and v[2].isdigit() and v[3].isdigit():
                acc[(int(v[3]), int(v[2]))].append((Decimal(v[0]), v[4], v[5]))
    return acc


def sweep_path(path):
    """/sweep/IDLE/N -> (IDLE rounded to 4 decimals, N), else None"""
    v = path.split("?")[0].strip("/").split("/")
    if len(v) == 3 and v[0] == "sweep":
        try:
            return round(float(v[1]), 4), int(v[2])
        except ValueError:
            return None
    return None


def clients_row(name, side, f, r, entries, acc, rtt, problems):
    """Scenario text and cross-check for a flow of lab/clients.sh: joined with the client's
    log line by local port (lport = the first connection, lport2 = the one the second
    request went on), else through the server's access log by URL path /sweep/IDLE/N."""
    P = f["pkts"]
    cl, sv = f["client"], f["server"]
    t0, t1 = P[0]["ts"], P[-1]["ts"]
    v = r["verdict"]
    served = [x for x in acc.get((sv[1], cl[1]), []) if t0 - 1 <= x[0] <= t1 + 1]
    lg, conn, how = None, None, "lport"
    for e in entries:
        if e.get("lport") == cl[1]:
            lg, conn = e, "first"
            break
    if lg is None:
        for e in entries:
            if e.get("lport2") == cl[1]:
                lg, conn = e, "second"
                break
    if lg is None:
        how = "access log"
        paths = [sp for sp in (sweep_path(x[2]) for x in served) if sp]
        idles = {i for i, _ in paths}
        cands = [e for e in entries if round(float(e["idle"]), 4) in idles]
        if len(cands) == 1:
            lg = cands[0]
            conn = "first" if any(n == 1 for _, n in paths) else "second"
        elif len(cands) > 1:
            problems.append("%s %s: %d client-log entries match the access log" % (name, cl, len(cands)))
    bits = [CLIENTS_PORTS[sv[1]]]
    if lg is None:
        problems.append("%s %s -> %s: no client-log entry (verdict %s)" % (name, cl, sv, v))
        bits.append("?")
        return "; ".join(bits), None
    idle = round(float(lg["idle"]), 4)
    bits.append("%s sweep idle=%s, %s connection" % (lg["client"], "%.2f" % idle if idle == round(idle, 2) else idle, conn)
                + (" (joined by the server's access log)" if how != "lport" else ""))
    second_here = any(sweep_path(x[2]) == (idle, 2) for x in served)
    second_elsewhere = [k[1] for k, xs in acc.items() if k[0] == sv[1] and k[1] != cl[1]
                        for x in xs if sweep_path(x[2]) == (idle, 2) and t0 - 1 <= x[0] <= t1 + 30]
    if v == "keepalive_race":
        req, close = r["req"], r["close"]
        crossed = req["ts"] < close["ts"] if side == "client" else req["ts"] - close["ts"] < rtt
        bits.append("crossed server close in flight" if crossed else "sent after server close arrived")
        srst = [t for d, t in r["rsts"] if d == "s"]
        bits.append("server RST ttl=%s" % srst[0] if srst else "no RST")
    elif v == "nat_idle_reset":
        bits.append("router RST ttl=%s vs server ttl=%s" % (
            next(t for d, t in r["rsts"] if d == "s" and t != r["srv_ttl"]), r["srv_ttl"]))
    elif conn == "first" and v in ("idle_closed", "closed_after_response", "completed"):
        if second_here:
            bits.append("second request reused it")
        elif lg.get("reused") is False or second_elsewhere:
            bits.append("not reused: the client had seen the server's close")
    if r.get("goaway_len"):
        bits.append("GOAWAY %dB" % r["goaway_len"])
    if r.get("close_notify_len") and v in ("keepalive_race", "idle_closed", "closed_after_response"):
        bits.append("close_notify %dB" % r["close_notify_len"])
    out = lg["outcome"].replace("\t", " ").replace("\n", " ")
    if len(out) > 160:
        out = out[:157] + "..."
    failed = not out.startswith("ok")
    cap_failed = v in ("keepalive_race", "nat_idle_reset", "idle_blackhole")
    note = ""
    if conn == "first":
        if cap_failed and not failed:
            other = lg.get("lport2") if lg.get("lport2") not in (None, cl[1]) else (
                second_elsewhere[0] if second_elsewhere else None)
            if other is not None:
                note = "; retried on a new connection, port %s" % other
            else:
                problems.append("%s %s: client says %r but capture verdict %s" % (name, cl, out, v))
        elif failed != cap_failed:
            problems.append("%s %s: client says %r but capture verdict %s" % (name, cl, out, v))
    else:
        if failed or cap_failed:
            problems.append("%s %s (second connection): client says %r, capture verdict %s"
                            % (name, cl, out, v))
    bits.append("client: " + out + note)
    return "; ".join(bits), conn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--clients", action="append", default=[],
                    help="a client log (JSON lines); repeat for several runs. "
                         "DIR/lab/last-run-clients/clients.jsonl (lab/clients.sh) is always read")
    ap.add_argument("--out", required=True)
    ap.add_argument("--delay-ms", type=float, default=25)
    a = ap.parse_args()
    clog = [json.loads(l) for path in a.clients for l in open(path) if l.strip()]
    # lab/clients.sh's evidence: its client log (lines name their client: the capture's
    # stem, or the stem and a suffix) and the servers' access logs
    cdir = os.path.join(a.dir, "lab", "last-run-clients")
    cpath = os.path.join(cdir, "clients.jsonl")
    newlog = [json.loads(l) for l in open(cpath) if l.strip()] if os.path.exists(cpath) else []
    clog = [c for c in clog if "client" not in c]
    acc = access_log(cdir)
    byport = collections.defaultdict(list)
    for c in clog:
        byport[c["lport"]].append(c)
    files = sorted(glob.glob(os.path.join(a.dir, "*.pcap")) + glob.glob(os.path.join(a.dir, "*.pcapng")))
    # lab/db.sh's captures are lab/measure_db.py's: their rows are kept as they are
    files = [f for f in files if not os.path.basename(f).startswith("db-")]
    kept = []
    if os.path.exists(a.out):
        kept = [l for l in open(a.out).read().splitlines()
                if l.startswith("db-") or l.startswith("# lab/db.sh")]
    rows, problems, summary, hs = [], [], [], []
    rtt = Decimal(2 * a.delay_ms) / 1000
    for path in files:
        name = os.path.basename(path)
        side = "server" if "-server" in name else "client"
        flows = flows_of(read(path))
        counts = collections.Counter()
        h2c = h2c_frames(path) if any(k[0][1] in H2C_PORTS or k[1][1] in H2C_PORTS
                                      for k in flows) else (frozenset(), frozenset())
        stem = name.rsplit(".", 1)[0].replace("-client", "").replace("-server", "")
        entries = [c for c in newlog if c["client"] == stem or c["client"].startswith(stem + "-")]
        answers = {key: answers_of(f) for key, f in flows.items()}

        def peers_of(key, f):
            def peers(t0, t1):
                hits = [(g, q) for k, g in flows.items() if k != key and g["server"] == f["server"]
                        for q in answers[k] if t0 < q["ts"] <= t1]
                return min(hits, key=lambda h: (h[1]["ts"], h[1]["n"])) if hits else None
            return peers

        for key, f in flows.items():
            r = analyse(f, h2c, side, peers_of(key, f))
            P = f["pkts"]
            v6 = P[0]["v6"]
            cl, sv = f["client"], f["server"]
            if sv[1] in CLIENTS_PORTS:
                v = r["verdict"]
                counts[v] += 1
                if side == "client":
                    syn = next((p for p in P if p["flags"] & SYN and not p["flags"] & ACK), None)
                    sa = next((p for p in P if p["flags"] & SYN and p["flags"] & ACK), None)
                    if syn and sa:
                        hs.append(float(sa["ts"] - syn["ts"]))
                scen, conn = clients_row(name, side, f, r, entries, acc, rtt, problems)
                nat = sv[1] == 9447 and conn == "first"   # the NAT run's idle request
                req_idle = close_idle = "-"
                if v in ("keepalive_race", "nat_idle_reset", "idle_blackhole") or (nat and v == "completed"):
                    req_idle = f6(r["req_idle"]) if r.get("req_idle") is not None else "-"
                if v in ("keepalive_race", "idle_closed") and r.get("close_idle") is not None:
                    close_idle = f6(r["close_idle"])
                rows.append([name, ep(cl[0], cl[1], v6), ep(sv[0], sv[1], v6), v, req_idle,
                             close_idle, "-", "-", scen, P[0]["ts"]])
                continue
            logs = [c for c in byport.get(cl[1], []) if log_matches(c, sv[1])]
            lg = logs[0] if len(logs) == 1 else None
            if len(logs) > 1:
                problems.append("%s %s: %d client-log entries share port" % (name, cl, len(logs)))
            v = r["verdict"]
            counts[v] += 1
            # handshake RTT on the client side
            if side == "client":
                syn = next((p for p in P if p["flags"] & SYN and not p["flags"] & ACK), None)
                sa = next((p for p in P if p["flags"] & SYN and p["flags"] & ACK), None)
                if syn and sa:
                    hs.append(float(sa["ts"] - syn["ts"]))
            req_idle = "-"
            close_idle = "-"
            retrans = span = "-"
            idle_lab = lg and lg["proto"] in ("nat", "blackhole")
            if v in ("keepalive_race", "nat_idle_reset", "idle_blackhole") or (idle_lab and v == "completed"):
                req_idle = f6(r["req_idle"]) if r.get("req_idle") is not None else "-"
            if v == "idle_blackhole":
                retrans = str(len(r["retrans"]))
                span = f6(r["retrans"][-1]["ts"] - r["req"]["ts"])
            if v in ("keepalive_race", "idle_closed") and r.get("close_idle") is not None:
                close_idle = f6(r["close_idle"])
            # scenario text
            proto = {80: "plain", 81: "plain", 443: "tls12", 444: "tls12", 8443: "tls13",
                     8444: "tls13", 8080: "nat", 8090: "blackhole",
                     8091: "blackhole slow server",
                     8092: "blackhole lonely server"}.get(sv[1], "?")
            if v6:
                proto += " ipv6"
            role = lg["role"] if lg else "?"
            bits = [proto]
            if lg and "idle" in lg and lg["role"] in ("sweep",) or idle_lab:
                bits.append("%s idle=%s" % (role, lg["idle"]))
            else:
                bits.append(role)
            if lg and lg.get("router_timeout"):
                bits.append("router forgets after %s s (conntrack established timeout), then DROPs"
                            % lg["router_timeout"])
            if v == "keepalive_race":
                req, close = r["req"], r["close"]
                # client side: request sent before the close arrived => crossed in flight;
                # server side: request arrived less than one RTT after the close left
                if side == "client":
                    crossed = req["ts"] < close["ts"]
                else:
                    crossed = req["ts"] - close["ts"] < rtt
                bits.append("crossed server close in flight" if crossed else "sent after server close arrived")
                srst = [t for d, t in r["rsts"] if d == "s"]
                bits.append("server RST ttl=%s" % srst[0] if srst else "no RST")
            elif v == "nat_idle_reset":
                bits.append("router RST ttl=%s vs server ttl=%s" % (
                    next(t for d, t in r["rsts"] if d == "s" and t != r["srv_ttl"]), r["srv_ttl"]))
            elif v == "idle_blackhole":
                end = r["client_end"]
                how = ("client %s #%d at +%.3f s" % ("RST" if end["flags"] & RST else "FIN", end["n"],
                                                      end["ts"] - r["req"]["ts"])
                       if end is not None else "no client FIN/RST before the capture ended")
                bits.append("no ACK/data/RST after the request (silence %.3f s); %d retransmissions over %.3f s; %s"
                            % (r["req_silence"], len(r["retrans"]),
                               r["retrans"][-1]["ts"] - r["req"]["ts"], how))
                co = r.get("corroboration")
                if co:
                    g, q = co["peer"]
                    bits.append("silence <= %s s, corroborated: %s to the same server answered (#%d, +%.3f s) "
                                "while it waited; RTT %s, longest silence survived %.3f s"
                                % (BLACKHOLE_IDLE_S, ep(g["client"][0], g["client"][1], q["v6"]), q["n"],
                                   q["ts"] - r["req"]["ts"],
                                   "%.1f ms" % (co["rtt"] * 1000) if co["rtt"] is not None else "unknown",
                                   co["survived"]))
            elif r.get("dropped") and side == "client":
                end = r["client_end"]
                bits.append("no ACK/data/RST after the request (silence %.3f s); %d retransmissions over %.3f s; "
                            "%s; not idle_blackhole: silence <= %s s and %s"
                            % (r["req_silence"], len(r["retrans"]), r["retrans"][-1]["ts"] - r["req"]["ts"],
                               "client %s at +%.3f s" % ("RST" if end["flags"] & RST else "FIN", end["ts"] - r["req"]["ts"])
                               if end is not None else "no client FIN/RST before the capture ended",
                               BLACKHOLE_IDLE_S, ", ".join(r["corroboration"]["why"])))
            elif lg and lg["proto"] == "nat" and v == "open_at_end":
                bits.append("server never saw the request (router RST'd it)")
            elif lg and lg["proto"] == "blackhole" and v == "open_at_end":
                bits.append("server never saw the request (router dropped it)")
            if r.get("close_notify_len"):
                bits.append("close_notify %dB" % r["close_notify_len"])
            if lg:
                bits.append("client: " + lg["outcome"].split(":")[0][:40])
            # cross-check with the client's own experience
            if lg:
                failed = not lg["outcome"].startswith("ok") and lg["role"] != "refused"
                if lg["role"] == "refused" and v != "refused":
                    problems.append("%s %s: refused expected, got %s" % (name, cl, v))
                if lg["role"] in ("sweep",) or idle_lab:
                    cap_failed = v in ("keepalive_race", "nat_idle_reset", "idle_blackhole")
                    server_blind = side == "server" and idle_lab and v == "open_at_end"
                    # dropped, but too short a silence to call it: the rule's other side
                    unproven = side == "client" and idle_lab and r.get("dropped") and v == "open_at_end"
                    if failed != cap_failed and not server_blind and not unproven:
                        problems.append("%s %s: client says %r but capture verdict %s"
                                        % (name, cl, lg["outcome"], v))
            else:
                problems.append("%s %s -> %s: no client-log entry (verdict %s)" % (name, cl, sv, v))
            rows.append([name, ep(cl[0], cl[1], v6), ep(sv[0], sv[1], v6), v, req_idle,
                         close_idle, retrans, span, "; ".join(bits), P[0]["ts"]])
        summary.append((name, len(flows), dict(counts)))
    with open(a.out + ".tmp", "w") as o:
        o.write("capture\tclient\tserver\tverdict\trequest_idle_s\tserver_close_idle_s\tretransmissions\tretransmission_span_s\tscenario\n")
        o.write("# staleconn expected verdicts, one row per TCP flow per capture (made by testdata/lab/measure.py)\n")
        o.write("# request_idle_s: ts(first packet of the studied request) - ts(last earlier packet with TCP payload, either direction, TLS close_notify left out)\n")
        o.write("# server_close_idle_s: ts(server's first close packet: TLS close_notify if any, else FIN) - ts(last earlier payload the server had seen:\n")
        o.write("#   client data the close does not acknowledge is left out, so a request crossing the close does not hide the keep-alive timeout)\n")
        o.write("# retransmissions (idle_blackhole): later client packets carrying the request's first byte again; retransmission_span_s: ts(the last of them) - ts(the request)\n")
        o.write("# lab/clients.sh captures (ports 9080, 9443-9447): with HTTP/2 the server's close starts at its GOAWAY (h2c: tshark's http2 dissector; TLS: the short record before the close_notify);\n")
        o.write("#   a server segment answers the request only if it acknowledges the request's last byte; the client's own close records are not requests\n")
        for r in sorted(rows, key=lambda r: (r[0], r[9])):
            o.write("\t".join(r[:9]) + "\n")
        for line in kept:
            o.write(line + "\n")
    os.replace(a.out + ".tmp", a.out)
    for name, n, c in summary:
        print("%-32s flows=%-3d %s" % (name, n, " ".join("%s=%d" % kv for kv in sorted(c.items()))))
    if hs:
        print("client-side SYN->SYN/ACK: median %.1f ms, min %.1f, max %.1f (n=%d)" % (
            statistics.median(hs) * 1000, min(hs) * 1000, max(hs) * 1000, len(hs)))
    for p in problems:
        print("CHECK:", p)


if __name__ == "__main__":
    main()
