#!/usr/bin/env python3
"""Makes the fuzzers' seed corpus from the committed lab captures (testdata/).

Written to fuzz/seeds/<target>/. capture_file: the small NAT captures and the mid-connection race whole (pcap, SLL2, pcapng),
and the first records of a race capture in each classic form (Ethernet, SLL, nanosecond,
-s 96), of the real-client captures (Node over TLS 1.3 and h2c, Go over HTTP/2) and of
the database captures (PostgreSQL, MariaDB, Redis; the Redis NAT capture whole).
packets: the same records re-encoded as the `packets` target reads them: a link-type
index, then per packet tag 0x00, a 2-byte millisecond step and a 2-byte length.
Run from anywhere: python3 fuzz/seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "testdata")
LINKS = [1, 0, 12, 101, 108, 113, 228, 229, 276]  # as in fuzz_targets/packets.rs


def records(path, limit):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0xFFFF
    at, out = 24, []
    while at + 16 <= len(data) and len(out) < limit:
        secs, frac, caplen, wire = struct.unpack(endian + "IIII", data[at:at + 16])
        out.append((secs + frac / (1e9 if nanos else 1e6), data[at:at + 16 + caplen]))
        at += 16 + caplen
    return data[:24], linktype, out


def write(kind, name, blob):
    with open(os.path.join(HERE, "seeds", kind, name), "wb") as f:
        f.write(blob)


for name in ["nat-client.pcap", "nat-client-any.pcap", "nat-client-any.pcapng",
             "race-plain-client-midstream.pcap", "db-redis-nat-client.pcap"]:
    with open(os.path.join(TESTDATA, name), "rb") as f:
        write("capture_file", name, f.read())

for name in ["race-tls12-client.pcap", "race-tls12-client-sll.pcap",
             "race-tls12-client-nano.pcap", "race-tls12-client-s96.pcap",
             "race-plain-client.pcap", "nat-client.pcap", "nat-client-any.pcap",
             "node-tls13-client.pcap", "node-h2c-client.pcap", "go-h2-tls13-client.pcap",
             "db-postgres-race-client.pcap", "db-mariadb-race-client.pcap",
             "db-postgres-nat-client.pcap", "db-mariadb-nat-client.pcap",
             "db-redis-race-client.pcap"]:
    # the database captures' first 80: start-ups, TLS upgrades, logins and first queries
    header, linktype, recs = records(os.path.join(TESTDATA, name), 80 if name.startswith("db-") else 40)
    write("capture_file", "head-" + name, header + b"".join(r for _, r in recs))
    seed, last = bytearray([LINKS.index(linktype)]), recs[0][0]
    for ts, rec in recs:
        step = min(int((ts - last) * 1000), 0x7FFF)
        last = ts
        body = rec[16:]
        seed += bytes([0]) + struct.pack("<HH", step, len(body)) + body
    write("packets", name.replace(".pcap", ""), bytes(seed))
