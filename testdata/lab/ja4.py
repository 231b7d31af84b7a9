#!/usr/bin/env python3
"""Prints the JA4 fingerprint (FoxIO's JA4 spec) of every ClientHello in the captures
given, one line each: capture, client, server, JA4, and the first ALPN value. An
implementation independent of staleconn's (src/flow/software.rs), from tshark's
tcp.payload, to measure which fingerprint each lab client sends and to check
staleconn's against (this tshark, 4.0.17, has no tls.handshake.ja4 field).

  testdata/lab/ja4.py testdata/*.pcap
"""
import hashlib, subprocess, sys

def grease(v):
    return (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)

def ja4(hello):
    # hello: the handshake message (type 1 first).
    if not hello or hello[0] != 1:
        return None
    p = 4
    legacy = int.from_bytes(hello[p:p + 2], "big"); p += 2 + 32
    p += 1 + hello[p]
    n = int.from_bytes(hello[p:p + 2], "big"); p += 2
    ciphers = [int.from_bytes(hello[p + i:p + i + 2], "big") for i in range(0, n, 2)]
    p += n
    p += 1 + hello[p]
    end = p + 2 + int.from_bytes(hello[p:p + 2], "big"); p += 2
    exts, sigs, alpn, versions, sni = [], [], None, [], False
    while p + 4 <= end:
        t = int.from_bytes(hello[p:p + 2], "big"); l = int.from_bytes(hello[p + 2:p + 4], "big")
        d = hello[p + 4:p + 4 + l]; p += 4 + l
        if grease(t):
            continue
        exts.append(t)
        if t == 0:
            sni = True
        elif t == 16 and len(d) > 3 and alpn is None:
            alpn = d[3:3 + d[2]].decode("latin1")
        elif t == 13:
            sigs = [int.from_bytes(d[2 + i:4 + i], "big") for i in range(0, int.from_bytes(d[:2], "big"), 2)]
        elif t == 43:
            versions = [int.from_bytes(d[1 + i:3 + i], "big") for i in range(0, d[0], 2)]
    versions = [v for v in versions if not grease(v)]
    version = max(versions) if versions else legacy
    v = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}.get(version, "00")
    ciphers = [c for c in ciphers if not grease(c)]
    a = "t%s%s%02d%02d%s" % (v, "d" if sni else "i", min(len(ciphers), 99), min(len(exts), 99),
                            (alpn[0] + alpn[-1]) if alpn else "00")
    h = lambda s: hashlib.sha256(s.encode()).hexdigest()[:12] if s else "000000000000"
    b = h(",".join("%04x" % c for c in sorted(ciphers)))
    e = ",".join("%04x" % x for x in sorted(x for x in exts if x not in (0, 16)))
    if sigs:
        e += "_" + ",".join("%04x" % s for s in sigs)
    return "%s_%s_%s" % (a, b, h(e)), alpn

for path in sys.argv[1:]:
    out = subprocess.run(["tshark", "-r", path, "-Y", "tls.handshake.type == 1", "-T", "fields",
                          "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst",
                          "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "tcp.payload"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        src, src6, sport, dst, dst6, dport, payload = line.split("\t")
        record = bytes.fromhex(payload)
        result = ja4(record[5:]) if record[:1] == b"\x16" else None
        fp, alpn = result if result else ("?", None)
        print("%s\t%s:%s\t%s:%s\t%s\t%s" % (path.split("/")[-1], src or src6, sport, dst or dst6, dport, fp, alpn))
