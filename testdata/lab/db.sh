#!/bin/bash
# staleconn test lab, database and cache pools: the three stories as PostgreSQL 15,
# MariaDB 10.11 and Redis 7 meet them, with psycopg2, PyMySQL, redis-py and HikariCP 2.7
# (pgjdbc 42.5, MariaDB Connector/J 2.7) as the pools. Built like run.sh (namespaces,
# veths, a router with MASQUERADE, conntrack, REJECT or DROP and the NFQUEUE delay line),
# with its own names and addresses so it can run beside the other lab scripts.
#
# REQUIREMENTS (Debian 12): root; netns, veth, conntrack, NFQUEUE, iptables; packages
#   iproute2 iptables conntrack tcpdump openssl gcc libnetfilter-queue-dev tshark
#   postgresql mariadb-server redis-server python3-psycopg2 python3-pymysql python3-redis
#   default-jdk-headless libhikaricp-java libpostgresql-jdbc-java libmariadb-java
#   libslf4j-java; optional ethtool, iputils-ping. No network access is needed.
#
# WHAT IT MAKES (in testdata/, i.e. the parent of this directory):
#   db-{postgres,mariadb,redis}-{race,nat,blackhole}-client.pcap   one per server and story
#   lab/last-run-db/ (client logs, Hikari's log, the servers' logs, RTT, versions)
#   expected.tsv: its db-* rows replaced by lab/measure_db.py's
#
# TOPOLOGY: db-cli (198.18.40.2) -- db-rtr (198.18.40.1 | 198.19.40.1) -- db-srv
#   (198.19.40.2). db-rtr forwards, MASQUERADEs towards the server (the client's port is
#   kept), conntrack established timeout 20 s, tcp_loose=0, every forwarded packet delayed
#   DELAY_MS (25 ms each way) by delayline.c on NFQUEUE 11. A packet of a connection it
#   forgot (INVALID) or a mid-stream packet it never saw (NEW, not SYN) is answered with
#   REJECT tcp-reset in the nat phase and DROPped in the blackhole phase.
#   db-srv: PostgreSQL :5432 (TLS on offer), MariaDB :3306 (TLS on offer), Redis :6379.
#
# PHASES (all three servers at once in each; the clients' connections run in parallel):
#   nat        server idle timers off; idle 30 s (past the router's 20 s: its RST) and 8 s
#              (a control)
#   race       server idle timers of 3 s (PostgreSQL idle_session_timeout, MariaDB
#              wait_timeout, Redis timeout); reuse sweeps across them, and controls
#   blackhole  as nat with DROP; a witness connection at 32 s proves the path works. Last:
#              the connections the clients gave up on go on retransmitting for minutes,
#              which a REJECT after it would answer in the next phase's captures
#
# HOW LONG: ~2.5 minutes.
#
# Usage: sudo testdata/lab/db.sh    (LAB_OUT=dir writes elsewhere; ONLY="race" runs one phase)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "db.sh: must be run as root" >&2; exit 1; }

LAB=$(cd "$(dirname "$0")" && pwd)
OUT=${LAB_OUT:-$(dirname "$LAB")}
DELAY_MS=${DELAY_MS:-25}
QNUM=11
NS_C=db-cli NS_R=db-rtr NS_S=db-srv
CLI4=198.18.40.2 RTR4C=198.18.40.1 RTR4S=198.19.40.1 SRV4=198.19.40.2
WORK=$(mktemp -d /tmp/staleconn-db.XXXXXX)
EVIDENCE="$OUT/lab/last-run-db"
PY=/usr/bin/python3     # Debian's, with python3-psycopg2, -pymysql and -redis
PGBIN=/usr/lib/postgresql/15/bin
. "$LAB/common.sh"   # PIDS, log, cleanup on exit, wait_for, stop_pid, need, build_delayline, fresh_namespaces, router_links, start_delay_line, self_signed_cert, cap, stop_caps

need db.sh tcpdump openssl gcc tshark iptables conntrack mariadbd mariadb-install-db redis-server redis-cli javac java "$PGBIN/postgres"
ONLY=${ONLY:-}
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
build_delayline
mkdir -p "$WORK/java" "$EVIDENCE"
JARS=/usr/share/java/HikariCP.jar:/usr/share/java/postgresql.jar:/usr/share/java/mariadb-java-client.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar
log "building HikariSweep"
javac -cp "$JARS" -d "$WORK/java" "$LAB/clients/java/HikariSweep.java"

fresh_namespaces
router_links dc0 dr0 dr1 ds0

log "router: forwarding, MASQUERADE, conntrack (20 s), NFQUEUE delay line"
R() { ip netns exec $NS_R "$@"; }
R sysctl -qw net.ipv4.ip_forward=1
R iptables -t nat -A POSTROUTING -o dr1 -j MASQUERADE
R sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=20
R sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
# forgotten: REJECT (nat, race) or DROP (blackhole); forgotten_is ACTION swaps the two rules
forgotten_is() {
    R iptables -F FORWARD
    R iptables -A FORWARD -p tcp -m conntrack --ctstate INVALID -j "$@"
    R iptables -A FORWARD -p tcp ! --syn -m conntrack --ctstate NEW -j "$@"
}
forgotten_is REJECT --reject-with tcp-reset
start_delay_line 900 dr0 dr1

log "servers: certificate, PostgreSQL, MariaDB, Redis (idle timers off)"
self_signed_cert
chmod 755 "$WORK"
S() { ip netns exec $NS_S "$@"; }
# PostgreSQL as the postgres user, trusting the lab's addresses, TLS on offer
mkdir -p "$WORK/pg" "$WORK/pgsock"
cp "$WORK/cert.pem" "$WORK/pg-cert.pem"; cp "$WORK/key.pem" "$WORK/pg-key.pem"
chown -R postgres: "$WORK/pg" "$WORK/pgsock" "$WORK/pg-cert.pem" "$WORK/pg-key.pem"
chmod 600 "$WORK/pg-key.pem"
su postgres -s /bin/sh -c "$PGBIN/initdb -D $WORK/pg/data -A trust -U postgres" > "$WORK/initdb.log" 2>&1
echo "host all all 0.0.0.0/0 trust" >> "$WORK/pg/data/pg_hba.conf"
S su postgres -s /bin/sh -c "exec $PGBIN/postgres -D $WORK/pg/data -c listen_addresses=$SRV4 \
    -c unix_socket_directories=$WORK/pgsock -c ssl=on -c ssl_cert_file=$WORK/pg-cert.pem \
    -c ssl_key_file=$WORK/pg-key.pem -c log_connections=on -c log_disconnections=on \
    -c logging_collector=off" > "$WORK/postgres.log" 2>&1 &
PIDS+=($!); PG_PID=$!
# MariaDB: its own data directory; the lab's clients log in as lab@'%' (made below)
mkdir -p "$WORK/my"
mariadb-install-db --user=root --datadir="$WORK/my/data" --auth-root-authentication-method=normal \
    > "$WORK/mariadb-install.log" 2>&1
S mariadbd --no-defaults --user=root --datadir="$WORK/my/data" --socket="$WORK/my/sock" \
    --pid-file="$WORK/my/pid" --bind-address=$SRV4 --port=3306 \
    --skip-name-resolve --log-warnings=4 --log-error="$WORK/mariadb.log" \
    --ssl-cert="$WORK/cert.pem" --ssl-key="$WORK/key.pem" &
PIDS+=($!); MY_PID=$!
S redis-server --bind $SRV4 --port 6379 --timeout 0 --save '' --appendonly no \
    --protected-mode no --loglevel verbose --logfile "$WORK/redis.log" --daemonize no &
PIDS+=($!); REDIS_PID=$!
listening() { S ss -ltn | grep -q "$SRV4:$1"; }
wait_for listening 5432 || { log "postgres did not start"; cat "$WORK/postgres.log" >&2; exit 1; }
wait_for listening 3306 || { log "mariadbd did not start"; cat "$WORK/mariadb.log" >&2; exit 1; }
wait_for listening 6379 || { log "redis did not start"; cat "$WORK/redis.log" >&2; exit 1; }
# each server's idle timer, set over its local socket (not on the captured veths)
PSQL() { S su postgres -s /bin/sh -c "psql -qAt -h $WORK/pgsock -U postgres -c \"$1\""; }
MYSQL() { S mariadb --socket="$WORK/my/sock" -uroot -e "$1"; }
REDIS() { S redis-cli -h $SRV4 -p 6379 "$@" >/dev/null; }
timers() {   # timers SECONDS (0: off)
    PSQL "ALTER SYSTEM SET idle_session_timeout = '${1}s'" >/dev/null
    PSQL "SELECT pg_reload_conf()" >/dev/null
    MYSQL "SET GLOBAL wait_timeout = $([ "$1" = 0 ] && echo 28800 || echo "$1")"
    REDIS CONFIG SET timeout "$1"
}
MYSQL "CREATE USER 'lab'@'%'; GRANT ALL ON *.* TO 'lab'@'%'"
timers 0

log "RTT check"
{
    echo "# ping through the router (delay line ${DELAY_MS} ms each way)"
    ip netns exec $NS_C ping -c 5 -i 0.2 $SRV4 2>&1 || true
    echo "# TCP connect() times to $SRV4:5432 (one RTT each)"
    ip netns exec $NS_C $PY -c "
import socket, time
for i in range(5):
    s = socket.socket(); t = time.monotonic(); s.connect(('$SRV4', 5432))
    print('connect %.1f ms' % ((time.monotonic() - t) * 1000)); s.close(); time.sleep(0.2)
"
    echo "# versions"
    uname -r; "$PGBIN/postgres" --version; mariadbd --version; redis-server --version
    $PY -c "import psycopg2, pymysql, redis; print('psycopg2', psycopg2.__version__, 'libpq', psycopg2.__libpq_version__); print('PyMySQL', pymysql.__version__); print('redis-py', redis.__version__)"
    { java -version 2>&1 | head -1; } || true
    ls -l /usr/share/java/HikariCP.jar /usr/share/java/postgresql.jar /usr/share/java/mariadb-java-client.jar
    { tcpdump --version 2>&1 | head -1; } || true
} > "$EVIDENCE/rtt.txt" 2>&1
grep -E "rtt|connect" "$EVIDENCE/rtt.txt" >&2
sleep 1

CLOG="$WORK/clients.jsonl"
: > "$CLOG"
# each run in phase's background subshell, which it replaces (exec): the PID phase bounds
# and ends is the client's own
DBC() { exec ip netns exec $NS_C $PY "$LAB/db_client.py" --host $SRV4 --log "$CLOG" "$@"; }
HIKARI() { exec ip netns exec $NS_C java -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS -cp "$JARS:$WORK/java" HikariSweep \
    --log "$CLOG" "$@" 2>>"$WORK/hikari.log"; }
PG_JDBC="jdbc:postgresql://$SRV4:5432/postgres?sslmode=disable"
PG_PORT_Q="SELECT inet_client_port()::text"
MY_JDBC="jdbc:mariadb://$SRV4:3306/"
MY_PORT_Q="SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()"

# phase NAME -- then the client commands, one per argument string (run in db-cli, in
# parallel), each bounded to 120 s; one client capture per server
phase() {
    local name=$1 pids=() c i; shift
    want "$name" || return 0
    log "phase $name"
    cap $NS_C "db-postgres-$name-client.pcap" -i dc0 tcp port 5432
    cap $NS_C "db-mariadb-$name-client.pcap" -i dc0 tcp port 3306
    cap $NS_C "db-redis-$name-client.pcap" -i dc0 tcp port 6379
    for c in "$@"; do
        eval "$c" &
        pids+=($!); PIDS+=($!)
    done
    for c in "${pids[@]}"; do
        for i in $(seq 1200); do kill -0 "$c" 2>/dev/null || break; sleep 0.1; done
        kill "$c" 2>/dev/null || true; wait "$c" 2>/dev/null || true
    done
    sleep 1.5            # the last FIN/ACK exchanges
    stop_caps "db-postgres-$name-client.pcap" "db-mariadb-$name-client.pcap" "db-redis-$name-client.pcap"
}

# nat: the router forgets after 20 s; 30 s idle meets its RST, 8 s is a control
phase nat \
    "DBC --proto pg --port 5432 --idles 30,8 --mode nat --client-name psycopg2-nat" \
    "DBC --proto mysql --port 3306 --idles 30,8 --mode nat --client-name pymysql-nat" \
    "DBC --proto redis --port 6379 --idles 30,8 --mode nat --client-name redis-py-nat" \
    "HIKARI --jdbc '$PG_JDBC' --port-query '$PG_PORT_Q' --idles 30,8 --client-name hikari-pg-nat" \
    "HIKARI --jdbc '$MY_JDBC' --port-query '$MY_PORT_Q' --user lab --idles 30,8 --client-name hikari-mariadb-nat"

# race: every server's idle timer 3 s; the client idles across it (the server sees each
# idle plus one RTT, ~50 ms)
SWEEP=${SWEEP:-2.00,2.90,2.93,2.94,2.95,2.96,2.97,2.98,2.99,3.02,3.10,3.50}
REDIS_SWEEP=${REDIS_SWEEP:-2.00,3.00,3.20,3.40,3.60,3.80,3.90,4.00,4.10,4.30,4.60,5.50}
HIKARI_SWEEP=${HIKARI_SWEEP:-2.00,2.95,2.97,3.50}
if want race; then timers 3; fi
phase race \
    "DBC --proto pg --port 5432 --idles $SWEEP --client-name psycopg2" \
    "DBC --proto pg --port 5432 --tls --idles 2.00,2.95,2.97,3.50 --client-name psycopg2-tls" \
    "DBC --proto mysql --port 3306 --idles $SWEEP --client-name pymysql" \
    "DBC --proto mysql --port 3306 --tls --idles 2.00,2.95,2.97,3.50 --client-name pymysql-tls" \
    "DBC --proto redis --port 6379 --idles $REDIS_SWEEP --client-name redis-py" \
    "HIKARI --jdbc '$PG_JDBC' --port-query '$PG_PORT_Q' --idles $HIKARI_SWEEP --client-name hikari-pg" \
    "HIKARI --jdbc '$MY_JDBC' --port-query '$MY_PORT_Q' --user lab --idles $HIKARI_SWEEP --client-name hikari-mariadb"
timers 0


# blackhole: as nat, but the router drops what it forgot; the witness at 32 s is answered
if want blackhole; then forgotten_is DROP; fi
phase blackhole \
    "DBC --proto pg --port 5432 --idles 30 --witness 32 --mode blackhole --client-name psycopg2-blackhole" \
    "DBC --proto mysql --port 3306 --idles 30 --witness 32 --mode blackhole --client-name pymysql-blackhole" \
    "DBC --proto redis --port 6379 --idles 30 --witness 32 --mode blackhole --client-name redis-py-blackhole" \
    "HIKARI --jdbc '$PG_JDBC' --port-query '$PG_PORT_Q' --idles 30 --client-name hikari-pg-blackhole" \
    "HIKARI --jdbc '$MY_JDBC' --port-query '$MY_PORT_Q' --user lab --idles 30 --client-name hikari-mariadb-blackhole"


log "evidence -> $EVIDENCE"
R conntrack -L 2>/dev/null > "$EVIDENCE/conntrack-end.txt" || true
R iptables -L FORWARD -v -n > "$EVIDENCE/iptables-forward.txt" 2>&1 || true
stop_pid "$DELAY_PID"
stop_pid "$REDIS_PID"
stop_pid "$MY_PID"
stop_pid "$PG_PID"
cat "$WORK/delayline.log" > "$EVIDENCE/delayline.log"
cp "$WORK/postgres.log" "$WORK/mariadb.log" "$WORK/redis.log" "$EVIDENCE/" 2>/dev/null || true
cp "$WORK/hikari.log" "$EVIDENCE/hikari.log" 2>/dev/null || true
cp "$CLOG" "$EVIDENCE/clients.jsonl"
for f in "$WORK"/tcpdump-*.log; do echo "== $(basename "$f")"; cat "$f"; done > "$EVIDENCE/tcpdump.log"

log "measuring -> expected.tsv (the db-* captures in $OUT)"
$PY "$LAB/measure_db.py" --dir "$OUT" --clients "$EVIDENCE/clients.jsonl" --expected "$OUT/expected.tsv"
ls -l "$OUT"/db-*.pcap >&2 || true
log "done"
