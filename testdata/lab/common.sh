# Shared by run.sh and blackhole.sh (sourced after they set NS_C, NS_R, NS_S and WORK):
# the processes we start, cleanup by PID, and bounded waits.

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
