# tests/lib.sh: the helpers the shell tests share, kept here once so that a fix to one (say, to how
# a server's port is awaited) reaches every test. Sourced, never run: a test sources it after its
# skip checks with
#     . "$(dirname "$0")/lib.sh"
# (CTest runs `bash /path/to/tests/test_x.sh`, so $0 names the test's own folder).
#
# It provides:
#   T                 a fresh scratch folder, removed at exit
#   PIDS              processes to kill -9 at exit (start adds each server to it)
#   on_exit           if the test defines it, run at exit after PIDS are killed, before $T goes
#   fails, check      check WHAT CMD...: runs CMD, prints "ok   WHAT" or "FAIL WHAT" (counted)
#   serve_port        serve_port LOG PID [POLLS [READY]]: waits for koe serve's port in LOG
#   start             start NAME ARGS...: koe serve on a free loopback port
#   metric            metric PORT KEY: the value of KEY in /metrics
#   wait_metric       wait_metric PORT KEY MIN: polls until KEY >= MIN
#   wait_metric_le    wait_metric_le PORT KEY MAX: polls until KEY <= MAX
# Knobs a test may set after sourcing: SERVE_ARGS (array, the arguments start gives koe serve
# before ARGS; default --data-dir "$KOE_DATA_DIR"), START_POLLS (how many 50 ms polls start waits
# for a server, default 600), WAIT_POLLS (the same for wait_metric*, default 1200). Every wait
# polls for a state; the counts only bound a hang.

T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    if declare -F on_exit >/dev/null; then on_exit; fi
    rm -rf "$T"
}
trap cleanup EXIT
fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi; }

# serve_port LOG PID [POLLS [READY]]: prints the port koe serve says in LOG it listens on, once LOG
# also has the line READY (default "koe: ready"; "" waits for the port alone). Polls every 50 ms,
# POLLS times at the most (default 600), and stops early if PID has ended; prints nothing unless
# both came (a server that listens but never gets ready, or dies warming up, has no port to use).
serve_port() {
    local log=$1 pid=$2 polls=${3:-600} ready=${4-koe: ready} port=
    for _ in $(seq "$polls"); do
        port=$(sed -n 's|.*listening on http://[0-9.]*:\([0-9]*\)/.*|\1|p' "$log")
        [ -n "$port" ] && { [ -z "$ready" ] || grep -q "$ready" "$log"; } && { echo "$port"; return; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
}

# start NAME ARGS...: koe serve --port 0 (the port it reports: a port probed free beforehand can be
# taken by another test's socket before the bind) with SERVE_ARGS, then ARGS; its log is
# $T/NAME.log. Waits for the port and "koe: ready"; sets PORT_<NAME> and PID_<NAME>.
start() {
    local name=$1; shift
    [ -n "${SERVE_ARGS+set}" ] || SERVE_ARGS=(--data-dir "$KOE_DATA_DIR")
    "$KOE" serve --port 0 "${SERVE_ARGS[@]}" "$@" >"$T/$name.log" 2>&1 &
    local pid=$! port=
    PIDS+=("$pid")
    port=$(serve_port "$T/$name.log" "$pid" "${START_POLLS:-600}")
    eval "PORT_$name=$port PID_$name=$pid"
}

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }
# metric_reaches PORT KEY OP BOUND: polls until the metric KEY compares OP (an awk operator) to BOUND
metric_reaches() {
    local v
    for _ in $(seq "${WAIT_POLLS:-1200}"); do
        v=$(metric "$1" "$2"); [ -n "$v" ] && awk -v v="$v" -v m="$4" "BEGIN{exit !(v $3 m)}" && return 0
        sleep 0.05
    done
    return 1
}
wait_metric() { metric_reaches "$1" "$2" '>=' "$3"; }    # port key minimum
wait_metric_le() { metric_reaches "$1" "$2" '<=' "$3"; } # port key maximum
