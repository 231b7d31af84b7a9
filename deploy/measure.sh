#!/bin/bash
# Measures what staleconn costs on a node, to size the DaemonSet's requests and limits:
# DURATION seconds (default 180) of live capture (-i lo --format json) in a network namespace
# of its own, under testdata/lab/soak_traffic.py (about 50 short connections a second, a
# keep-alive race every 30 s, six long idle pooled connections) plus LOAD pooled keep-alive
# clients (default 2) sending requests back to back to a server of their own (port 18082,
# each response in one write, so Nagle's algorithm does not hold it). Every 5 s it samples staleconn's CPU
# time (utime + stime from /proc/PID/stat) and memory (VmRSS, VmHWM), and at the end prints
# the packets per second seen on the namespace's loopback, the mean CPU in millicores and
# the peak RSS. FORMAT=json (the default) or FORMAT=table picks the output. Run as root:
#   deploy/measure.sh [DURATION] [LOAD] [STALECONN]
# Writes into ${MEASURE_OUT:-/tmp/staleconn-measure}: samples.tsv, staleconn.out/.err.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "measure.sh: must be run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$HERE/../testdata/lab
DURATION=${1:-180}
LOAD=${2:-2}
STALECONN=${3:-$HERE/../target/release/staleconn}
OUT=${MEASURE_OUT:-/tmp/staleconn-measure}
FORMAT=${FORMAT:-json}
NS=skf-measure-$$
PIDS=()
mkdir -p "$OUT"
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up

ip netns exec "$NS" "$STALECONN" -i lo --format "$FORMAT" --duration "$((DURATION + 10))s" \
    tcp port 18080 or tcp port 18081 or tcp port 18082 > "$OUT/staleconn.out" 2> "$OUT/staleconn.err" &
SC=$!
PIDS+=("$SC")
sleep 1
ip netns exec "$NS" timeout "$((DURATION + 30))" python3 "$LAB/soak_traffic.py" "$DURATION" \
    > "$OUT/traffic.out" 2>&1 &
PIDS+=("$!")
sleep 1
# The LOAD clients' server, then LOAD clients, each one pooled connection sending requests
# back to back until DURATION is up (bounded by time and by timeout).
ip netns exec "$NS" timeout "$((DURATION + 10))" python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nload\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18082), H).serve_forever()
' > /dev/null 2>&1 &
PIDS+=("$!")
sleep 1
for _ in $(seq "$LOAD"); do
    ip netns exec "$NS" timeout "$((DURATION + 5))" python3 -c '
import http.client, sys, time
end = time.monotonic() + float(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", 18082, timeout=5)
while time.monotonic() < end:
    conn.request("GET", "/")
    conn.getresponse().read()
' "$((DURATION - 3))" > /dev/null 2>&1 &
    PIDS+=("$!")
done

rx() { ip netns exec "$NS" cat /sys/class/net/lo/statistics/rx_packets; }
ticks() { awk '{print $14 + $15}' "/proc/$SC/stat"; }
hz=$(getconf CLK_TCK)
rx0=$(rx); t0=$(ticks); start=$(date +%s.%N)
printf 'elapsed_s\tcpu_ticks\trss_kb\thwm_kb\tlo_packets\n' > "$OUT/samples.tsv"
for _ in $(seq $((DURATION / 5))); do
    sleep 5
    kill -0 "$SC" 2>/dev/null || break
    printf '%s\t%s\t%s\t%s\t%s\n' \
        "$(echo "$(date +%s.%N) - $start" | bc)" "$(( $(ticks) - t0 ))" \
        "$(awk '/^VmRSS/ {print $2}' "/proc/$SC/status")" \
        "$(awk '/^VmHWM/ {print $2}' "/proc/$SC/status")" "$(( $(rx) - rx0 ))" >> "$OUT/samples.tsv"
done
rx1=$(rx); t1=$(ticks); end=$(date +%s.%N)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SC/status")
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SC/status")
kill -INT "$SC" 2>/dev/null || true
wait "$SC" 2>/dev/null || true
awk -v p=$((rx1 - rx0)) -v c=$((t1 - t0)) -v hz="$hz" -v s="$start" -v e="$end" \
    -v hwm="$hwm" -v rss="$rss" 'BEGIN {
    secs = e - s
    printf "%.0f s, %.0f packets/s on lo, staleconn CPU %.0f millicores (%.1f us a packet), RSS %d KB at the end, peak %d KB\n",
        secs, p / secs, 1000 * c / hz / secs, 1e6 * c / hz / p, rss, hwm
}'
echo "samples: $OUT/samples.tsv"
