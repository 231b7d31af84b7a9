#!/usr/bin/env python3
"""Measure lab/db.sh's captures (testdata/db-*.pcap) and put their rows in expected.tsv.

Reads each capture with tshark (its pgsql, mysql and resp dissectors tell a query from a
reply and a goodbye from a query; TLS records are told by size), splits it into TCP flows,
judges each flow by the rules below, joins it by client port with the clients' own log
(lab/last-run-db/clients.jsonl: what psycopg2, PyMySQL, redis-py and HikariCP raised or
logged) and warns where the two disagree. The db-* rows of --expected are replaced; every
other row is kept as it is.

Per flow (the client sent the SYN; the server's TTL is the TTL of its SYN/ACK):
  client goodbye   PostgreSQL Terminate, MySQL COM_QUIT, Redis QUIT; over TLS the client's
                   last records of 26 bytes or less (GOODBYE_RECORD), sent 5 ms or less
                   before its FIN or RST
  request          any other client payload, first transmission (a retransmission carries
                   an earlier sequence number); the studied request is the last of them
  answered         a later server payload segment acknowledges the request's last byte
  server close     the first of: server data that answers nothing after it had been
                   quiet 0.5 s (PostgreSQL's FATAL ErrorResponse, a MySQL error packet, or
                   that as a TLS record), the server's close_notify (a TLS record of 40
                   bytes or less after that), its FIN, an RST with the server's TTL
  completed        the studied request was answered and the client began closing (its
                   goodbye, FIN or RST) before any server close
  idle_closed      the studied request was answered, then the server closed first after it
                   had been idle 0.5 s or more (closed_after_response: less)
  keepalive_race   the studied request was not answered and a server close began before it
                   (a stale reuse) or after it without acknowledging it (a crossing)
  nat_idle_reset   the studied request was not answered and met an RST with another TTL
                   (the router's REJECT) before any server close
  idle_blackhole   the studied request got no server packet of any kind and was
                   retransmitted (the router's DROP; db.sh's witness connection, answered
                   meanwhile, shows the path worked)
Figures, as for the HTTP captures (expected.tsv's header):
  request_idle_s       keepalive_race, nat_idle_reset, idle_blackhole and the nat phase's
                       controls: ts(the
                       studied request) - ts(the last earlier payload, either direction, the
                       server's close packets left out)
  server_close_idle_s  keepalive_race and idle_closed: ts(the server close's first packet)
                       - ts(the last earlier payload the server had seen: client payload that
                       packet does not acknowledge left out)
  retransmissions, retransmission_span_s   idle_blackhole: as for HTTP
"""
import argparse, collections, glob, json, os, subprocess, sys

FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ip.ttl", "tcp.srcport",
          "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset",
          "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "pgsql.type", "pgsql.severity", "pgsql.code",
          "mysql.command", "mysql.error_code", "resp.bulk_string.value", "tls.record.length",
          "tls.record.content_type"]
SERVER_PORTS = {5432: "postgresql", 3306: "mysql", 6379: "redis"}
QUIET_S = 0.5
# a goodbye's TLS record: close_notify (19 bytes in TLS 1.3, 26 in 1.2 with AES-GCM), an
# encrypted Terminate or COM_QUIT (22 in TLS 1.3); the lab's query, SELECT now(), is 35 or more
GOODBYE_RECORD = 26


def packets(path):
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-E", "separator=\t",
                          "-E", "occurrence=a", "-E", "aggregator=,",
                          "-o", "tcp.desegment_tcp_streams:FALSE"]
                         + sum((["-e", f] for f in FIELDS), []),
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        c = line.split("\t")
        c += [""] * (len(FIELDS) - len(c))
        yield dict(zip(FIELDS, c))


class Pkt:
    def __init__(self, p, from_client):
        self.frame = int(p["frame.number"])
        self.ts = float(p["frame.time_epoch"])
        self.ttl = int(p["ip.ttl"] or 0)
        self.from_client = from_client
        self.syn = p["tcp.flags.syn"] in ("1", "True")
        self.fin = p["tcp.flags.fin"] in ("1", "True")
        self.rst = p["tcp.flags.reset"] in ("1", "True")
        self.has_ack = p["tcp.flags.ack"] in ("1", "True")
        self.seq = int(p["tcp.seq_raw"])
        self.ack = int(p["tcp.ack_raw"] or 0)
        self.len = int(p["tcp.len"] or 0)
        self.pg = p["pgsql.type"]
        self.pg_severity = p["pgsql.severity"]
        self.my_command = p["mysql.command"]
        self.my_error = p["mysql.error_code"]
        self.resp = ""
        for v in p["resp.bulk_string.value"].split(","):
            try:
                self.resp = bytes.fromhex(v.replace(":", "")).decode("ascii", "replace")
            except ValueError:
                self.resp = v
            break
        self.tls_lengths = [int(x) for x in p["tls.record.length"].split(",") if x]


def after(a, b):  # sequence a after b (32-bit wrap)
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def at_least(a, b):
    return a == b or after(a, b)


def judge(flow, is_tls):
    pk = flow["packets"]
    server_ttl = next((p.ttl for p in pk if not p.from_client and p.syn), None)
    # client payload: goodbyes and requests, first transmissions only
    top = None
    requests, retrans = [], collections.defaultdict(list)
    client_data = [p for p in pk if p.from_client and p.len > 0]
    client_end = next((p for p in pk if p.from_client and (p.fin or p.rst)), None)
    goodbye = None
    for p in client_data:
        if top is not None and not after(p.seq + p.len, top):
            for r in requests:
                if r.seq <= p.seq < r.seq + r.len or p.seq == r.seq:
                    retrans[r.frame].append(p)
            continue
        top = p.seq + p.len
        if "Termination" in p.pg or p.my_command == "1" or p.resp.upper() == "QUIT":
            goodbye = goodbye or p
        else:
            requests.append(p)
    # over TLS the goodbye is encrypted: the client's last small records (Terminate or
    # COM_QUIT, close_notify), sent right before its own FIN or RST (a query the close
    # met is followed by the client's FIN only once the server's close has arrived)
    if is_tls and client_end is not None:
        while (requests and requests[-1].tls_lengths
               and max(requests[-1].tls_lengths) <= GOODBYE_RECORD
               and 0 <= client_end.ts - requests[-1].ts <= 0.005):
            goodbye = requests.pop()
    studied = requests[-1] if requests else None
    end = (studied.seq + studied.len) if studied else None

    def answers(p):
        return (not p.from_client and p.len > 0 and studied is not None
                and p.frame > studied.frame and at_least(p.ack, end))
    answered = next((p for p in pk if answers(p)), None) if studied else None
    # the server's close
    close, last_server = None, None
    for p in pk:
        if p.from_client:
            continue
        if p.len > 0:
            quiet = last_server is not None and p.ts - last_server.ts > QUIET_S
            # it answers client requests sent since the server's previous data
            answering = any(r.frame < p.frame and (last_server is None or r.frame > last_server.frame)
                            and at_least(p.ack, r.seq + r.len) for r in requests)
            goodbye_words = ("Error" in p.pg and "FATAL" in p.pg_severity) or p.my_error != ""
            if (quiet or goodbye_words) and not answering and (goodbye_words or is_tls):
                close = p
                break
            last_server = p
        elif p.fin or (p.rst and p.ttl == server_ttl):
            close = p
            break
    # the server's idle before its close: from the last payload it had seen
    idle_close = None
    if close is not None:
        ref = None
        for p in pk:
            if p.frame >= close.frame or p.len == 0:
                continue
            if p.from_client and not at_least(close.ack, p.seq + p.len):
                continue
            ref = p
        if ref is not None:
            idle_close = close.ts - ref.ts
    # a client that began closing first
    client_began = min([p.frame for p in pk if p.from_client and (p.fin or p.rst)]
                       + ([goodbye.frame] if goodbye else []), default=None)
    router_rst = next((p for p in pk if not p.from_client and p.rst and p.ttl != server_ttl
                       and studied is not None and p.frame > studied.frame), None)
    server_after = [p for p in pk if not p.from_client and studied is not None
                    and p.frame > studied.frame]
    fig = {}
    if studied is not None and answered is None:
        req_idle = None
        prev = [p for p in pk if p.frame < studied.frame and p.len > 0
                and not (close is not None and not p.from_client and p.frame >= close.frame)]
        if prev:
            req_idle = studied.ts - prev[-1].ts
        rts = retrans.get(studied.frame, [])
        if router_rst is not None and (close is None or router_rst.frame < close.frame):
            return "nat_idle_reset", {"request_idle_s": req_idle}
        if not server_after and rts:
            return "idle_blackhole", {"request_idle_s": req_idle, "retransmissions": len(rts),
                                      "retransmission_span_s": rts[-1].ts - studied.ts}
        # a close after the request that acknowledges it: the server had it (another story)
        had_it = close is not None and close.frame > studied.frame and close.has_ack \
            and at_least(close.ack, end)
        if close is not None and not had_it:
            return "keepalive_race", {"request_idle_s": req_idle, "server_close_idle_s": idle_close}
        return "unexplained", {}
    if close is not None and (client_began is None or close.frame < client_began):
        if idle_close is not None and idle_close < QUIET_S:
            return "closed_after_response", {}
        return "idle_closed", {"server_close_idle_s": idle_close}
    if studied is not None and flow["story"] == "nat":
        prev = [p for p in pk if p.frame < studied.frame and p.len > 0]
        fig["request_idle_s"] = studied.ts - prev[-1].ts if prev else None
    return "completed", fig


def flows_of(path):
    flows = collections.OrderedDict()
    for p in packets(path):
        if not p["tcp.srcport"]:
            continue
        sport, dport = int(p["tcp.srcport"]), int(p["tcp.dstport"])
        from_client = dport in SERVER_PORTS
        cport, sport_ = (sport, dport) if from_client else (dport, sport)
        cip, sip = (p["ip.src"], p["ip.dst"]) if from_client else (p["ip.dst"], p["ip.src"])
        key = (cip, cport, sip, sport_)
        flows.setdefault(key, {"packets": []})["packets"].append(Pkt(p, from_client))
    return flows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--clients", required=True)
    ap.add_argument("--expected", required=True)
    a = ap.parse_args()
    by_port = {}
    for line in open(a.clients):
        rec = json.loads(line)
        for k in ("port", "second_port"):
            if rec.get(k) not in (None, ""):
                by_port.setdefault(int(rec[k]), []).append((k, rec))
    rows, warnings = [], 0
    for path in sorted(glob.glob(os.path.join(a.dir, "db-*.pcap"))):
        name = os.path.basename(path)
        story = name.split("-")[2]
        flows = flows_of(path)
        for (cip, cport, sip, sport), flow in flows.items():
            flow["story"] = story
            pk = flow["packets"]
            # TLS: the client's first payload after the SSLRequest's 'S' is a handshake record
            is_tls = any(p.tls_lengths for p in pk)
            verdict, fig = judge(flow, is_tls)
            who = by_port.get(cport, [])
            desc = []
            for k, rec in who:
                idle = rec.get("idle")
                what = ("first connection" if k == "port" else
                        "the connection the pool or library opened after the idle")
                out = rec.get("outcome")
                err = rec.get("error", "").replace("\n", " ").replace("\t", " ")
                desc.append(f"{rec['client']} {rec.get('mode', story)} idle={idle}, {what}; "
                            f"client: {out}{' ' + err if err else ''}")
                # cross-check: a failure on the wire is the first connection's, and its
                # client saw an error or (Hikari) a new connection
                failed = out != "ok" or (rec.get("second_port") not in (None, rec.get("port")))
                if k == "port" and rec.get("mode") != "witness" and \
                        verdict in ("keepalive_race", "nat_idle_reset", "idle_blackhole") and not failed:
                    print(f"warning: {name} {cport}: {verdict} but the client saw no failure", file=sys.stderr)
                    warnings += 1
                if k == "port" and verdict == "completed" and out != "ok":
                    print(f"warning: {name} {cport}: completed but the client saw {out}", file=sys.stderr)
                    warnings += 1
            if verdict == "unexplained":
                print(f"warning: {name} {cport}: no rule explains this flow", file=sys.stderr)
                warnings += 1
            if not desc:
                desc.append("not in the client log (a pool's own connection)")
            f = lambda k: "-" if fig.get(k) is None else (
                str(fig[k]) if k == "retransmissions" else f"{fig[k]:.6f}")
            rows.append("\t".join([name, f"{cip}:{cport}", f"{sip}:{sport}", verdict,
                                   f("request_idle_s"), f("server_close_idle_s"),
                                   f("retransmissions"), f("retransmission_span_s"),
                                   ("tls; " if is_tls else "") + "; ".join(desc)]))
    kept = [l for l in open(a.expected).read().splitlines()
            if not l.startswith("db-") and not l.startswith("# lab/db.sh")]
    kept.append("# lab/db.sh captures (db-*): judged by lab/measure_db.py from tshark's pgsql, mysql and resp "
                "dissectors and TLS record sizes; the scenario quotes the client's own log (clients.jsonl)")
    with open(a.expected, "w") as out:
        out.write("\n".join(kept + rows) + "\n")
    print(f"measure_db: {len(rows)} flows, {warnings} warnings", file=sys.stderr)


if __name__ == "__main__":
    main()
