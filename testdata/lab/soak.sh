#!/bin/bash
# Soak test of staleconn's live capture: DURATION seconds (default 1800) of steady short
# connections plus a few long idle ones (soak_traffic.py) on the loopback of a network
# namespace, with staleconn -i lo running the whole time; its resident memory is sampled
# every 30 s into soak-rss.tsv. Run as root:  testdata/lab/soak.sh [DURATION] [STALECONN]
# Writes into ${SOAK_OUT:-/tmp/staleconn-soak}: soak-rss.tsv, staleconn.out, traffic.out.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "soak.sh: must be run as root" >&2; exit 1; }
LAB=$(cd "$(dirname "$0")" && pwd)
DURATION=${1:-1800}
STALECONN=${2:-$LAB/../../target/release/staleconn}
OUT=${SOAK_OUT:-/tmp/staleconn-soak}
NS=sc-soak-$$
mkdir -p "$OUT"
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up

ip netns exec "$NS" "$STALECONN" -i lo --duration "$((DURATION + 20))s" \
    tcp port 18080 or tcp port 18081 > "$OUT/staleconn.out" 2> "$OUT/staleconn.err" &
SC=$!
sleep 1
ip netns exec "$NS" timeout "$((DURATION + 60))" python3 "$LAB/soak_traffic.py" "$DURATION" \
    > "$OUT/traffic.out" 2>&1 &
TRAFFIC=$!

printf 'elapsed_s\trss_kb\n' > "$OUT/soak-rss.tsv"
start=$(date +%s)
while kill -0 "$SC" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SC/status" 2>/dev/null || true)
    [ -n "$rss" ] && printf '%s\t%s\n' "$(( $(date +%s) - start ))" "$rss" >> "$OUT/soak-rss.tsv"
    sleep 30
done
wait "$TRAFFIC" || true
wait "$SC" || true
echo "soak done: $OUT"
