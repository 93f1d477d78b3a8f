#!/usr/bin/env bash
# perf/switches.sh: how often each core switches from one process to
# another per query, behind HAProxy and behind dbrouter, under the same
# sysbench load.
#
# On these 2-vCPU machines sysbench, the server and the proxy share two
# cores, and at 64 threads the machine is saturated: QPS is 2 CPU-seconds
# over everyone's CPU per query. A switch between threads of one process is
# cheap; a switch to another process costs more, and the process switched
# to then runs on caches the other one filled. The same syscalls and the
# same number of context switches can so cost sysbench and the server more
# behind one proxy than behind another, depending on the order in which the
# proxy wakes them. This script counts that order: every sched_switch on
# both CPUs over a window (`perf record -a`), each thread mapped to its
# process (proxy, mariadbd, sysbench, idle, other), divided by the queries
# the server answered in that window.
#
# Each repetition runs the paths in rotated order; each proxy is pinned as
# in perf/sysbench.sh, in front of one mariadbd started here (free ports, a
# temporary directory, stopped on exit).
#
# Environment (defaults in brackets):
#   WORKLOAD [oltp_read_only]  THREADS [64]  REPS [3]
#   WARMUP [4]   seconds of load before the window
#   WINDOW [3]   seconds recorded (every switch is an event: keep it short)
#   TABLE_SIZE [100000]  PS_MODE [default]
#   DBROUTER_BIN [target/release/dbrouter]; built when stale unless BUILD=0
#   DBROUTER_BIN_B []  a second build, as the path "dbrouter_b"
#   PIN [true]  both proxies pinned (dbrouter --pin-cores, HAProxy cpu-map)
#   RESULTS_DIR [perf/results]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=perf/lib.sh
source "$ROOT/perf/lib.sh"
WORKLOAD=${WORKLOAD:-oltp_read_only}
THREADS=${THREADS:-64}
REPS=${REPS:-3}
WARMUP=${WARMUP:-4}
WINDOW=${WINDOW:-3}
TABLE_SIZE=${TABLE_SIZE:-100000}
PS_MODE=${PS_MODE:-default}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/perf/results}
BUILD=${BUILD:-1}
DBROUTER_BIN=${DBROUTER_BIN:-$ROOT/target/release/dbrouter}
DBROUTER_BIN_B=${DBROUTER_BIN_B:-}
PIN=${PIN:-true}
HAPROXY_PIN=$PIN
export RUST_LOG=${RUST_LOG:-warn}

init_one_proxy_run

require_integers 1 THREADS REPS WARMUP WINDOW TABLE_SIZE
parse_ps_mode
require_commands mariadbd mariadb-install-db mariadb haproxy sysbench perf ss timeout

start_one_proxy_run switches $((REPS * ${#PATHS[@]} * (WARMUP + WINDOW + 12) + 60))

# threads_of name pid...: "tid name" for every thread of those processes.
threads_of() {
    local name=$1 pid task
    shift
    for pid in "$@"; do
        for task in /proc/"$pid"/task/*; do echo "${task##*/} $name"; done
    done
}

start_proxy() {
    case $1 in
        haproxy)
            start_haproxy "$PROXY_PORT" "$MDB_PORT" 4096
            PROXY_PID=$HAP_PID
            ;;
        dbrouter | dbrouter_b)
            local bin=$DBROUTER_BIN
            [[ $1 == dbrouter_b ]] && bin=$DBROUTER_BIN_B
            start_dbrouter "$bin" "$PROXY_PORT" "$MDB_PORT" "$TMP/$1.log"
            PROXY_PID=$STARTED_PID
            ;;
    esac
}

# count_switches threads_file perf_script_file queries: one CSV tail
# "switches,process_changes,<from>-><to> ..." per query.
count_switches() {
    awk -v q="$3" '
        FNR == NR { proc[$1] = $2; next }
        {
            prev = ""; next_ = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^prev_pid=/) prev = substr($i, 10)
                if ($i ~ /^next_pid=/) next_ = substr($i, 10)
            }
            if (prev == "" || next_ == "") next
            a = prev == 0 ? "idle" : (prev in proc ? proc[prev] : "other")
            b = next_ == 0 ? "idle" : (next_ in proc ? proc[next_] : "other")
            n++
            if (a != b) changes++
            pair[a "->" b]++
        }
        END {
            printf "%.3f,%.3f", n / q, changes / q
            for (p in pair) printf ",%s=%.3f", p, pair[p] / q
            printf "\n"
        }' "$1" "$2"
}

echo "rep,path,queries,switches_per_query,process_changes_per_query,pairs_per_query..." >"$CSV"
for ((rep = 1; rep <= REPS; rep++)); do
    n=${#PATHS[@]}
    for ((k = 0; k < n; k++)); do
        path=${PATHS[$(((k + rep - 1) % n))]}
        over_limit && die "over the time limit"
        start_proxy "$path"
        wait_sql "$PROXY_PORT" "$SB_USER" "$SB_PASS" 30 "$PROXY_PID" || die "$path not answering"
        timeout $((WARMUP + WINDOW + 60)) sysbench "$WORKLOAD" "${SB_COMMON[@]}" "${PS_ARGS[@]}" \
            --mysql-port="$PROXY_PORT" --threads="$THREADS" --time=$((WARMUP + WINDOW + 2)) run \
            >"$OUT/$path.$rep.sysbench.txt" 2>&1 &
        sb=$!
        # sysbench's --time starts once all its threads are connected,
        # which can take seconds (a proxy reading accounts, say).
        for ((i = 0; i < 300; i++)); do
            grep -q "Threads started" "$OUT/$path.$rep.sysbench.txt" 2>/dev/null && break
            sleep 0.2
        done
        sleep "$WARMUP"
        {
            threads_of proxy "$PROXY_PID"
            threads_of mariadbd "$MDB_PID"
            # $sb is timeout; sysbench is its child.
            threads_of sysbench "$(pgrep -P "$sb" -x sysbench)"
        } >"$TMP/threads" 2>/dev/null
        q0=$(questions)
        t0=$(date +%s%N)
        perf record -q -e sched:sched_switch -a -o "$TMP/switches.data" -- sleep "$WINDOW" 2>/dev/null ||
            die "perf record failed (needs root or kernel.perf_event_paranoid <= -1)"
        t1=$(date +%s%N)
        q1=$(questions)
        # A window that did not see the load would count nothing worth reading.
        grep -q sysbench "$TMP/threads" || die "sysbench was not running during the $path window"
        (((t1 - t0) / 1000000 >= WINDOW * 900)) || die "the $path window lasted $(((t1 - t0) / 1000000)) ms"
        wait "$sb" || die "sysbench through $path failed (see $OUT/$path.$rep.sysbench.txt)"
        stop_pid "$PROXY_PID" "$path" 20
        PROXY_PID=""
        perf script -i "$TMP/switches.data" -F trace 2>/dev/null >"$TMP/switches.txt"
        q=$((q1 - q0 - 1)) # the second read counts itself
        ((q > 0)) || die "no queries counted through $path"
        row=$(count_switches "$TMP/threads" "$TMP/switches.txt" "$q")
        echo "$rep,$path,$q,$row" >>"$CSV"
        log "rep $rep $path: $q queries; per query: switches ${row%%,*}, process changes $(cut -d, -f2 <<<"$row")"
    done
done

echo
echo "context switches per query, $WORKLOAD at $THREADS threads, both CPUs, ${WINDOW}s windows, pinned=$PIN, ps-mode=$PS_MODE, $(date -u '+%Y-%m-%d %H:%M') UTC, git $(git_rev)"
echo
echo "| path | switches (median) | to another process (median) | per repetition |"
echo "|---|--:|--:|---|"
for path in "${PATHS[@]}"; do
    awk -F, -v p="$path" '
        $2 == p { s[++n] = $4; c[n] = $5; reps = reps (reps ? " " : "") $5 }
        function median(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END { printf "| %s | %.3f | %.3f | %s |\n", p, median(s, n), median(c, n), reps }' "$CSV"
done
echo
log "raw numbers (with every from->to pair per query): $CSV"
