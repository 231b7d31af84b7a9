#!/bin/bash
# staleconn test lab: makes real packet captures of pooled HTTP keep-alive
# failures with real Linux TCP stacks in network namespaces.
#
# REQUIREMENTS (Debian 12): run as root on a kernel with network namespaces,
#   veth, conntrack, iptables NFQUEUE + REJECT (/proc/net/netfilter/nfnetlink_queue).
#   Packages: iproute2 iptables tcpdump nginx openssl python3 gcc
#   libnetfilter-queue-dev, wireshark-common (editcap) and tshark (measure.py);
#   optional: ethtool (turns off checksum offload so captured checksums are
#   valid), iputils-ping (RTT check).  No network access is needed.
#
# WHAT IT MAKES (in testdata/, i.e. the parent of this directory):
#   race-{plain,tls12,tls13}-{client,server}.pcap   keep-alive race sweep + benign flows
#   race-tls12-client-{any,sll,nano,s96}.pcap, race-tls12-client.pcapng
#                                                    same traffic in other link/file forms
#   nat-client.pcap, nat-client-any.pcap, nat-client-any.pcapng, nat-server.pcap
#                                                    NAT idle reset run
#   expected.tsv (via lab/measure.py), lab/last-run/ (client logs, nginx logs, RTT)
#
# TOPOLOGY: sc-cli (198.18.1.2, fd00:198:18:1::2) -- sc-rtr -- sc-srv (198.19.2.2,
#   fd00:198:19:2::2).  sc-rtr forwards, MASQUERADEs IPv4 towards the server,
#   has conntrack established timeout 350 s, tcp_loose=0, answers INVALID /
#   NEW-non-SYN TCP with REJECT tcp-reset, and delays every packet it forwards
#   by DELAY_MS (default 25 ms, so RTT ~50 ms) with an NFQUEUE delay line
#   (delayline.c) hooked in mangle/PREROUTING (after conntrack has classified
#   the packet, before the filter/FORWARD REJECT rule; the REJECT's RST is
#   generated locally and not delayed).
#
# HOW LONG: ~7 minutes (the NAT run idles 380 s; the three race phases, ~12 s
#   each, run meanwhile).  NAT_SCALE=0.05 ./run.sh makes a ~1 minute smoke
#   test (NAT idles and conntrack timeout scaled; keepalive case not meaningful)
#   -- do not commit its captures.
#
# Usage: sudo testdata/lab/run.sh         (writes the captures into testdata/)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run.sh: must be run as root" >&2; exit 1; }

LAB=$(cd "$(dirname "$0")" && pwd)
OUT=${LAB_OUT:-$(dirname "$LAB")}       # LAB_OUT=dir writes elsewhere (keeps the committed captures)
STALECONN=${STALECONN:-}                 # STALECONN=path: also run staleconn -i live in each race phase
DELAY_MS=${DELAY_MS:-25}
NAT_SCALE=${NAT_SCALE:-1}
QNUM=7
NS_C=sc-cli NS_R=sc-rtr NS_S=sc-srv
CLI4=198.18.1.2 RTR4C=198.18.1.1 RTR4S=198.19.2.1 SRV4=198.19.2.2
CLI6=fd00:198:18:1::2 RTR6C=fd00:198:18:1::1 RTR6S=fd00:198:19:2::1 SRV6=fd00:198:19:2::2
WORK=$(mktemp -d /tmp/staleconn-lab.XXXXXX)
. "$LAB/common.sh"   # PIDS, log, cleanup on exit, wait_for, stop_pid, need, build_delayline, fresh_namespaces, router_links, start_delay_line, self_signed_cert, cap, stop_caps

# live NS NAME ARGS...: staleconn -i in NS beside tcpdump; its -w file $OUT/NAME.pcap,
# its JSON lines $OUT/NAME.json; compared with -r on its own -w file after the run
live() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" "$STALECONN" --format json -w "$OUT/$name.pcap" "$@" \
        > "$OUT/$name.json" 2>"$WORK/staleconn-$name.log" &
    local pid=$!
    PIDS+=("$pid"); CAP_PIDS+=("$pid:$name"); LIVE_NAMES+=("$name")
    wait_for grep -q "listening on" "$WORK/staleconn-$name.log" || { log "staleconn $name did not start"; cat "$WORK/staleconn-$name.log" >&2; exit 1; }
}
LIVE_NAMES=()

need run.sh tcpdump nginx openssl python3 gcc editcap tshark iptables ip6tables
build_delayline
fresh_namespaces
router_links c0 r0 r1 s0
ip -n $NS_C addr add $CLI6/64 dev c0 nodad
ip -n $NS_R addr add $RTR6C/64 dev r0 nodad
ip -n $NS_R addr add $RTR6S/64 dev r1 nodad
ip -n $NS_S addr add $SRV6/64 dev s0 nodad
ip -n $NS_C -6 route add default via $RTR6C
ip -n $NS_S -6 route add default via $RTR6S

log "router: forwarding, MASQUERADE, conntrack, REJECT, NFQUEUE delay line"
R() { ip netns exec $NS_R "$@"; }
R sysctl -qw net.ipv4.ip_forward=1
R sysctl -qw net.ipv6.conf.all.forwarding=1
R iptables -t nat -A POSTROUTING -o r1 -j MASQUERADE
# a forgotten (expired) connection's mid-stream packet is INVALID with tcp_loose=0
R iptables -A FORWARD -p tcp -m conntrack --ctstate INVALID -j REJECT --reject-with tcp-reset
R iptables -A FORWARD -p tcp ! --syn -m conntrack --ctstate NEW -j REJECT --reject-with tcp-reset
CT_TIMEOUT=$(python3 -c "print(max(5, int(350 * $NAT_SCALE)))")
R sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$CT_TIMEOUT"
R sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
start_delay_line 1800 r0 r1 ip6tables

log "server: certificate and nginx"
mkdir -p "$WORK/nginx/logs" "$OUT/lab/last-run"
self_signed_cert
sed -e "s#@WORK@#$WORK#g" -e "s#@SRV4@#$SRV4#g" -e "s#@SRV6@#$SRV6#g" \
    "$LAB/nginx.conf.in" > "$WORK/nginx.conf"
echo "user root;" | cat - "$WORK/nginx.conf" > "$WORK/nginx.conf.tmp" && mv "$WORK/nginx.conf.tmp" "$WORK/nginx.conf"
ip netns exec $NS_S nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!); NGINX_PID=$!
ss_listen() { ip netns exec $NS_S ss -ltn | grep -q "$SRV4:8443"; }
wait_for ss_listen || { log "nginx did not start"; cat "$WORK/nginx-error.log" >&2; exit 1; }

log "RTT check"
{
    echo "# ping through the router (delay line ${DELAY_MS} ms each way)"
    ip netns exec $NS_C ping -c 5 -i 0.2 $SRV4 2>&1 || true
    ip netns exec $NS_C ping -c 3 -i 0.2 $SRV6 2>&1 || true
    echo "# TCP connect() times to $SRV4:80 (one RTT each)"
    ip netns exec $NS_C python3 -c "
import socket, time
for i in range(5):
    s = socket.socket(); t = time.monotonic(); s.connect(('$SRV4', 80))
    print('connect %.1f ms' % ((time.monotonic() - t) * 1000)); s.close(); time.sleep(0.2)
"
} > "$OUT/lab/last-run/rtt.txt"
grep -E "rtt|connect" "$OUT/lab/last-run/rtt.txt" >&2
sleep 1      # let the RTT-check connections finish their TIME_WAIT exchange

CLOG="$WORK/clients.jsonl"
: > "$CLOG"

log "NAT run: captures + 3 clients (A idle 300 s, B idle 380 s, C keepalive + idle 380 s)"
cap $NS_C nat-client.pcap -i c0 tcp port 8080
cap $NS_C nat-client-any.pcap -i any tcp port 8080
cap $NS_S nat-server.pcap -i s0 tcp port 8080
ip netns exec $NS_C python3 "$LAB/nat_client.py" --host $SRV4 --port 8080 --log "$CLOG" --scale "$NAT_SCALE" &
PIDS+=($!); NAT_PID=$!

# race phases, one after the other, while the NAT clients idle
race_phase() {   # race_phase PROTO PORT REFUSED_PORT
    local proto=$1 port=$2 rport=$3 f="tcp and (port $2 or port $3)" extra=()
    log "race phase $proto (port $port, refused port $rport)"
    local names=("race-$proto-client.pcap" "race-$proto-server.pcap")
    cap $NS_C "race-$proto-client.pcap" -i c0 "$f"
    cap $NS_S "race-$proto-server.pcap" -i s0 "$f"
    if [ "$proto" = tls12 ]; then
        cap $NS_C race-tls12-client-any.pcap -i any "$f"
        cap $NS_C race-tls12-client-sll.pcap -i any -y LINUX_SLL "$f"
        cap $NS_C race-tls12-client-nano.pcap -i c0 --time-stamp-precision=nano "$f"
        cap $NS_C race-tls12-client-s96.pcap -i c0 -s 96 "$f"
        names+=(race-tls12-client-any.pcap race-tls12-client-sll.pcap race-tls12-client-nano.pcap race-tls12-client-s96.pcap)
    fi
    if [ -n "$STALECONN" ]; then
        live $NS_C "live-race-$proto-client" -i c0 "$f"
        names+=("live-race-$proto-client")
    fi
    if [ "$proto" = plain ]; then extra=(--host6 "$SRV6"); fi
    rm -f "$WORK/ready-$proto" "$WORK/stopped-$proto"
    ip netns exec $NS_C python3 "$LAB/race_client.py" --proto "$proto" --host $SRV4 \
        --port "$port" --refused-port "$rport" --log "$CLOG" \
        --ready "$WORK/ready-$proto" --stopped "$WORK/stopped-$proto" "${extra[@]}" &
    local cpid=$!; PIDS+=("$cpid")
    local i
    for i in $(seq 400); do [ -e "$WORK/ready-$proto" ] && break; sleep 0.1; done   # <= 40 s
    [ -e "$WORK/ready-$proto" ] || log "warning: $proto client never became ready"
    sleep 0.3
    stop_caps "${names[@]}"
    touch "$WORK/stopped-$proto"
    for i in $(seq 150); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    kill "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    sleep 6     # let the server finish closing the open_at_end connection before the next phase
}
race_phase plain 80 81
race_phase tls12 443 444
race_phase tls13 8443 8444

log "waiting for the NAT clients (bounded)"
NAT_WAIT=$(python3 -c "print(int(420 * $NAT_SCALE) + 60)")
for i in $(seq "$NAT_WAIT"); do kill -0 "$NAT_PID" 2>/dev/null || break; sleep 1; done
kill "$NAT_PID" 2>/dev/null || true
wait "$NAT_PID" 2>/dev/null || true
sleep 1
stop_caps nat-client.pcap nat-client-any.pcap nat-server.pcap

log "router conntrack table at the end"
R conntrack -L 2>/dev/null > "$OUT/lab/last-run/conntrack-end.txt" || true
R iptables -L FORWARD -v -n > "$OUT/lab/last-run/iptables-forward.txt" 2>&1 || true
stop_pid "$DELAY_PID"
stop_pid "$NGINX_PID"
cat "$WORK/delayline.log" > "$OUT/lab/last-run/delayline.log"
cp "$WORK/nginx-access.log" "$WORK/nginx-error.log" "$OUT/lab/last-run/" 2>/dev/null || true
cp "$CLOG" "$OUT/lab/last-run/clients.jsonl"
for f in "$WORK"/tcpdump-*.log; do echo "== $(basename "$f")"; cat "$f"; done > "$OUT/lab/last-run/tcpdump.log"

log "pcapng conversions"
editcap -F pcapng "$OUT/race-tls12-client.pcap" "$OUT/race-tls12-client.pcapng"
editcap -F pcapng "$OUT/nat-client-any.pcap" "$OUT/nat-client-any.pcapng"

log "measuring -> expected.tsv"
for name in "${LIVE_NAMES[@]}"; do
    "$STALECONN" -r "$OUT/$name.pcap" --format json > "$OUT/$name.offline.json" || true
    python3 "$LAB/compare_live.py" "$OUT/$name.json" "$OUT/$name.offline.json" >&2
done
# the blackhole captures (lab/blackhole.sh, also BH_SHORT=1) stay in testdata/: measure them with their own logs
CLIENT_LOGS=(--clients "$OUT/lab/last-run/clients.jsonl")
[ -e "$OUT/lab/last-run-blackhole/clients.jsonl" ] && CLIENT_LOGS+=(--clients "$OUT/lab/last-run-blackhole/clients.jsonl")
[ -e "$OUT/lab/last-run-blackhole-short/clients.jsonl" ] && CLIENT_LOGS+=(--clients "$OUT/lab/last-run-blackhole-short/clients.jsonl")
python3 "$LAB/measure.py" --dir "$OUT" "${CLIENT_LOGS[@]}" \
    --out "$OUT/expected.tsv" --delay-ms "$DELAY_MS"
ls -l "$OUT"/*.pcap "$OUT"/*.pcapng >&2
log "done"
