#!/usr/bin/env python3
"""Compares staleconn's live output (JSON lines: announcements, then the document) with
its offline analysis of the -w file of the same run: every flow's verdict and evidence.
usage: compare_live.py LIVE.json OFFLINE.json   (exit 1 on any difference)"""
import json
import sys

lines = [l for l in open(sys.argv[1]) if l.strip()]
live, announced = json.loads(lines[-1]), [json.loads(l) for l in lines[:-1]]
offline = json.load(open(sys.argv[2]))
key = lambda f: (f["client"], f["server"], f["first_seen"])
lf, of = {key(f): f for f in live["flows"]}, {key(f): f for f in offline["flows"]}
diff = [k for k in sorted(set(lf) | set(of))
        if k not in lf or k not in of
        or any(lf[k][x] != of[k][x] for x in ("verdict", "evidence", "requests", "longest_idle_s"))]
flagged = sum(1 for f in live["flows"] if f["flagged"])
print(f"{sys.argv[1]}: {len(lf)} flows live, {len(of)} offline, {flagged} flagged, "
      f"{len(announced)} announced as they happened, kernel {live['summary'].get('kernel')}, "
      f"{len(diff)} differing")
for k in diff:
    print("  differs:", k, lf.get(k, {}).get("verdict"), of.get(k, {}).get("verdict"))
sys.exit(1 if diff else 0)
