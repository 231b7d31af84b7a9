#!/bin/bash
# Soak test of staleconn's live capture as a node agent: DURATION seconds (default 1800) of
# steady short connections plus a keep-alive race every 30 s and a few long idle ones
# (soak_traffic.py) on the loopback of a network namespace, with
#   staleconn -i lo --format json --keep-flagged DIR --keep-flagged-files FILES
# running the whole time. Every 30 s its resident memory and the kept directory's size and
# file count are sampled into soak-rss.tsv. Run as root:
#   testdata/lab/soak.sh [DURATION] [STALECONN]
# Writes into ${SOAK_OUT:-/tmp/staleconn-soak}: soak-rss.tsv, events.jsonl (the event
# lines), staleconn.err, traffic.out, kept/ (the pcaps). The namespace is named
# ${SOAK_NS:-sc-soak}-PID and removed at the end; every process is bounded by timeout.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "soak.sh: must be run as root" >&2; exit 1; }
LAB=$(cd "$(dirname "$0")" && pwd)
DURATION=${1:-1800}
STALECONN=${2:-$LAB/../../target/release/staleconn}
OUT=${SOAK_OUT:-/tmp/staleconn-soak}
FILES=${SOAK_KEEP_FILES:-40}
SIZE=${SOAK_KEEP_SIZE:-64K}
NS=${SOAK_NS:-sc-soak}-$$
# More options for staleconn (e.g. SOAK_ARGS="--metrics-listen 127.0.0.1:9477"); with
# --metrics-listen, /metrics is fetched into the output directory once a minute.
read -r -a EXTRA <<< "${SOAK_ARGS:-}"
METRICS=$(sed -n 's/.*--metrics-listen[ =]\([^ ]*\).*/\1/p' <<< "${SOAK_ARGS:-}")
mkdir -p "$OUT"
rm -rf "$OUT/kept"
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up

ip netns exec "$NS" timeout "$((DURATION + 60))" "$STALECONN" -i lo --duration "$((DURATION + 20))s" \
    --format json --summary-every 30s \
    --keep-flagged "$OUT/kept" --keep-flagged-files "$FILES" --keep-flagged-size "$SIZE" \
    "${EXTRA[@]}" tcp port 18080 or tcp port 18081 > "$OUT/events.jsonl" 2> "$OUT/staleconn.err" &
SC=$!
sleep 1
ip netns exec "$NS" timeout "$((DURATION + 60))" python3 "$LAB/soak_traffic.py" "$DURATION" \
    > "$OUT/traffic.out" 2>&1 &
TRAFFIC=$!

printf 'elapsed_s\trss_kb\tkept_files\tkept_bytes\n' > "$OUT/soak-rss.tsv"
start=$(date +%s)
while kill -0 "$SC" 2>/dev/null; do
    # `timeout` execs nothing itself: staleconn is its child.
    pid=$(pgrep -P "$SC" -x staleconn 2>/dev/null || pgrep -P "$SC" 2>/dev/null || echo "$SC")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    files=$(find "$OUT/kept" -name 'staleconn-*.pcap' 2>/dev/null | wc -l)
    bytes=$(find "$OUT/kept" -name 'staleconn-*.pcap' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}')
    elapsed=$(( $(date +%s) - start ))
    [ -n "$rss" ] && printf '%s\t%s\t%s\t%s\n' "$elapsed" "$rss" "$files" "$bytes" >> "$OUT/soak-rss.tsv"
    if [ -n "$METRICS" ] && [ $(( elapsed % 60 )) -lt 30 ]; then
        ip netns exec "$NS" timeout 5 python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=4).read().decode())' \
            "http://$METRICS/metrics" > "$OUT/metrics-$elapsed.txt" 2>/dev/null || true
    fi
    sleep 30
done
wait "$TRAFFIC" || true
wait "$SC" || true
echo "soak done: $OUT"
