# Shared by run.sh, blackhole.sh and clients.sh (sourced after they set LAB, NS_C, NS_R,
# NS_S and WORK): the processes we start, cleanup by PID, bounded waits, the tools, the
# delay line, the namespaces, the links between them, the servers' certificate and the
# captures.

PIDS=()          # every background process we start, killed by PID only

log() { echo "[$(date +%T)] $*" >&2; }

cleanup() {
    set +e
    local i
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null
    done
    sleep 0.5
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do
        kill -9 "${PIDS[i]}" 2>/dev/null
    done
    for ns in $NS_C $NS_R $NS_S; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for CMD... : retry a check up to 100 times, 0.1 s apart
wait_for() { local i; for i in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# stop_pid PID: SIGINT/TERM one of our processes and wait (bounded) for it to exit
stop_pid() {
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# need SCRIPT TOOL...: stop with one line naming the first tool that is missing
need() {
    local script=$1 t; shift
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$script: missing $t" >&2; exit 1; }
    done
}

# build_delayline: compile the NFQUEUE delay line (delayline.c) into $WORK
build_delayline() {
    [ -e /proc/net/netfilter/nfnetlink_queue ] || log "warning: /proc/net/netfilter/nfnetlink_queue missing; NFQUEUE may not work"
    log "building delayline"
    gcc -O2 -Wall -o "$WORK/delayline" "$LAB/delayline.c" -lnetfilter_queue -lnfnetlink
}

# fresh_namespaces: NS_C, NS_R and NS_S made anew (a leftover of a killed run removed),
# loopback up
fresh_namespaces() {
    local ns
    log "creating namespaces"
    for ns in $NS_C $NS_R $NS_S; do
        ip netns del "$ns" 2>/dev/null || true
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
}

# router_links C0 R0 R1 S0: veths NS_C:C0 -- NS_R:R0 and NS_R:R1 -- NS_S:S0 with the IPv4
# addresses CLI4, RTR4C, RTR4S, SRV4 (/24), up, checksum/segmentation offload off where
# ethtool exists (captured checksums are then right and no segment exceeds the MTU), and
# the client's and server's default routes through the router
router_links() {
    local c0=$1 r0=$2 r1=$3 s0=$4 p
    ip link add "$c0" netns $NS_C type veth peer name "$r0" netns $NS_R
    ip link add "$s0" netns $NS_S type veth peer name "$r1" netns $NS_R
    ip -n $NS_C addr add $CLI4/24 dev "$c0"
    ip -n $NS_R addr add $RTR4C/24 dev "$r0"
    ip -n $NS_R addr add $RTR4S/24 dev "$r1"
    ip -n $NS_S addr add $SRV4/24 dev "$s0"
    for p in "$NS_C $c0" "$NS_R $r0" "$NS_R $r1" "$NS_S $s0"; do
        set -- $p
        ip -n "$1" link set "$2" up
        if command -v ethtool >/dev/null; then
            ip netns exec "$1" ethtool -K "$2" tx off tso off gso off >/dev/null 2>&1 || true
        fi
    done
    ip -n $NS_C route add default via $RTR4C
    ip -n $NS_S route add default via $RTR4S
}

# start_delay_line SECONDS R0 R1 [ip6tables]: the NFQUEUE delay line (queue QNUM, DELAY_MS
# each way, for at most SECONDS) in NS_R, every packet entering R0 or R1 queued to it
# (IPv6 too when the fourth word is ip6tables); sets DELAY_PID
start_delay_line() {
    local seconds=$1 r0=$2 r1=$3 v6=${4:-} t
    ip netns exec $NS_R "$WORK/delayline" $QNUM "$DELAY_MS" "$seconds" 2>"$WORK/delayline.log" &
    PIDS+=($!); DELAY_PID=$!
    wait_for grep -q "delayline: queue" "$WORK/delayline.log" || { log "delayline did not start"; cat "$WORK/delayline.log"; exit 1; }
    for t in iptables $v6; do
        ip netns exec $NS_R $t -t mangle -A PREROUTING -i "$r0" -j NFQUEUE --queue-num $QNUM
        ip netns exec $NS_R $t -t mangle -A PREROUTING -i "$r1" -j NFQUEUE --queue-num $QNUM
    done
}

# self_signed_cert: a P-256 certificate and key for the lab's servers, WORK/cert.pem and
# WORK/key.pem, made anew at each run
self_signed_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 30 -subj "/CN=staleconn-lab" 2>/dev/null
}

# cap NS NAME ARGS...: tcpdump in NS writing OUT/NAME, started when it says it listens
CAP_PIDS=()      # PID:NAME of every capture started
cap() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" tcpdump -U -n -Z root -w "$OUT/$name" "$@" 2>"$WORK/tcpdump-$name.log" &
    local pid=$!
    PIDS+=("$pid"); CAP_PIDS+=("$pid:$name")
    wait_for grep -q "listening on" "$WORK/tcpdump-$name.log" || { log "tcpdump $name did not start"; cat "$WORK/tcpdump-$name.log" >&2; exit 1; }
}

# stop_caps NAME...: stop the named captures (all of them without a name)
stop_caps() {
    local want e
    for e in "${CAP_PIDS[@]}"; do
        if [ $# -eq 0 ]; then stop_pid "${e%%:*}"; continue; fi
        for want in "$@"; do
            if [ "${e#*:}" = "$want" ]; then stop_pid "${e%%:*}"; fi
        done
    done
}
