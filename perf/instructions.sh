#!/usr/bin/env bash
# perf/instructions.sh: the user-space instructions HAProxy and dbrouter
# execute per query under the same sysbench load, counted by callgrind.
#
# QPS and CPU time on these 2-vCPU VMs move 5-10% between runs and there are
# no hardware counters, so a change of a few hundred instructions per query
# is invisible to perf/sysbench.sh. An instruction count repeats: the same
# binary under the same load counts the same within about 1%, whatever else
# the machine is doing. It covers the proxy's code and libraries only, not
# the kernel's work for its syscalls: it says what a change to dbrouter's own
# code costs per query, not what a query costs (perf/sysbench.sh says that).
#
# Each proxy runs under valgrind (tool callgrind), alone, in front of one
# mariadbd started here (free ports, a temporary directory, stopped on exit).
# Per workload, sysbench runs WARMUP + WINDOW seconds; callgrind's counts are
# dumped (and so zeroed) after WARMUP and again after WINDOW, and the second
# dump's instructions are divided by the queries the server answered in
# between (its Questions counter, read over the socket).
#
# Environment (defaults in brackets):
#   WORKLOADS ["oltp_point_select oltp_read_only"]
#   THREADS [16]       sysbench threads (callgrind runs one thread at a time,
#                      so the proxy serves a few thousand queries a second)
#   WARMUP [4]         seconds of load before counting
#   WINDOW [8]         seconds counted
#   TABLE_SIZE [100000]
#   PS_MODE [default]  "disable" = text protocol
#   DBROUTER_BIN [target/release/dbrouter]; built when stale unless BUILD=0
#   DBROUTER_BIN_B []  a second build, counted as the path "dbrouter_b"
#   TOP [12]           functions listed per dbrouter path, by instructions
#                      of their own (not of what they call) per query
#   RESULTS_DIR [perf/results]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=perf/lib.sh
source "$ROOT/perf/lib.sh"
WORKLOADS=${WORKLOADS:-"oltp_point_select oltp_read_only"}
THREADS=${THREADS:-16}
WARMUP=${WARMUP:-4}
WINDOW=${WINDOW:-8}
TABLE_SIZE=${TABLE_SIZE:-100000}
PS_MODE=${PS_MODE:-default}
TOP=${TOP:-12}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/perf/results}
BUILD=${BUILD:-1}
DBROUTER_BIN=${DBROUTER_BIN:-$ROOT/target/release/dbrouter}
DBROUTER_BIN_B=${DBROUTER_BIN_B:-}
export RUST_LOG=${RUST_LOG:-warn}

init_one_proxy_run

require_integers 1 THREADS WARMUP WINDOW TABLE_SIZE
require_integers 0 TOP
parse_ps_mode
require_commands mariadbd mariadb-install-db mariadb haproxy sysbench valgrind callgrind_control ss timeout

n_work=$(wc -w <<<"$WORKLOADS")
start_one_proxy_run instructions $((${#PATHS[@]} * (n_work * (WARMUP + WINDOW + 8) + 20) + 60))

# The instructions of one callgrind dump, by function (their own, not their
# callees'): "instructions function" lines, most first. Dumps are written
# with --compress-strings=no so that each part names its functions itself.
self_costs() {
    awk '/^fn=/ { fn = substr($0, 4); next }
         /^calls=/ { callee = 1; next }
         /^[0-9+*-]/ { if (callee) { callee = 0; next } if (fn != "") cost[fn] += $2 }
         END { for (f in cost) printf "%d %s\n", cost[f], f }' "$1" | sort -rn
}

# start_under_callgrind path: the path's proxy on PROXY_PORT -> PROXY_PID.
start_under_callgrind() {
    local path=$1
    local vg=(valgrind --tool=callgrind --compress-strings=no --compress-pos=no
        --callgrind-out-file="$TMP/callgrind.$path.out")
    case $path in
        haproxy)
            HAPROXY_WRAP=("${vg[@]}")
            start_haproxy "$PROXY_PORT" "$MDB_PORT" 4096
            HAPROXY_WRAP=()
            PROXY_PID=$HAP_PID
            ;;
        dbrouter | dbrouter_b)
            local bin=$DBROUTER_BIN
            [[ $path == dbrouter_b ]] && bin=$DBROUTER_BIN_B
            # Under valgrind the threads run one at a time: pinning adds
            # nothing to an instruction count.
            REACTORS=2 PIN=false start_dbrouter "$bin" "$PROXY_PORT" "$MDB_PORT" "$TMP/$path.log" "${vg[@]}"
            PROXY_PID=$STARTED_PID
            ;;
    esac
}

echo "path,workload,threads,questions,instructions,instructions_per_query" >"$CSV"
declare -A PER_QUERY=()
for path in "${PATHS[@]}"; do
    over_limit && die "over the time limit"
    start_under_callgrind "$path"
    wait_sql "$PROXY_PORT" "$SB_USER" "$SB_PASS" 90 "$PROXY_PID" ||
        { tail -20 "$TMP/$path.log" "$TMP/haproxy.log" 2>/dev/null >&2; die "$path not answering under valgrind"; }
    dumps=0
    for workload in $WORKLOADS; do
        timeout $((WARMUP + WINDOW + 120)) sysbench "$workload" "${SB_COMMON[@]}" "${PS_ARGS[@]}" \
            --mysql-port="$PROXY_PORT" --threads="$THREADS" --time=$((WARMUP + WINDOW + 4)) run \
            >"$OUT/$path.$workload.sysbench.txt" 2>&1 &
        sb=$!
        sleep "$WARMUP"
        callgrind_control -d "$PROXY_PID" >/dev/null 2>&1 || die "callgrind_control failed for $path"
        q0=$(questions)
        sleep "$WINDOW"
        q1=$(questions)
        callgrind_control -d "$PROXY_PID" >/dev/null 2>&1 || die "callgrind_control failed for $path"
        dumps=$((dumps + 2))
        wait "$sb" || die "sysbench $workload through $path failed (see $OUT/$path.$workload.sysbench.txt)"
        part=$TMP/callgrind.$path.out.$dumps
        for ((i = 0; i < 50; i++)); do [[ -s $part ]] && break; sleep 0.1; done
        ir=$(awk '/^summary:/ {print $2}' "$part")
        # The second read of Questions counts itself.
        q=$((q1 - q0 - 1))
        ((q > 0)) && [[ -n $ir ]] || die "nothing counted for $path $workload"
        PER_QUERY[$path.$workload]=$((ir / q))
        echo "$path,$workload,$THREADS,$q,$ir,$((ir / q))" >>"$CSV"
        log "$path $workload: $q queries, $ir instructions, $((ir / q)) per query"
        if [[ $path != haproxy ]] && ((TOP > 0)); then
            self_costs "$part" | head -n "$TOP" |
                awk -v q="$q" '{ n = $1; $1 = ""; printf "    %7.0f %s\n", n / q, substr($0, 2) }' \
                    >"$OUT/$path.$workload.top.txt"
        fi
        cp "$part" "$OUT/callgrind.$path.$workload.out"
    done
    stop_pid "$PROXY_PID" "$path" 20
    PROXY_PID=""
done

echo
echo "user-space instructions per query under callgrind, $THREADS sysbench threads, ${WINDOW}s counted, ps-mode=$PS_MODE, $(date -u '+%Y-%m-%d %H:%M') UTC, git $(git_rev)"
[[ -n $DBROUTER_BIN_B ]] && echo "dbrouter: $DBROUTER_BIN; dbrouter_b: $DBROUTER_BIN_B"
echo
header="| workload | haproxy | dbrouter | dbrouter/haproxy |"
rule="|---|--:|--:|--:|"
[[ -n $DBROUTER_BIN_B ]] && header+=" dbrouter_b | dbrouter_b/dbrouter |" rule+="--:|--:|"
echo "$header"
echo "$rule"
for workload in $WORKLOADS; do
    h=${PER_QUERY[haproxy.$workload]} d=${PER_QUERY[dbrouter.$workload]}
    row="| $workload | $h | $d | $(awk -v a="$d" -v b="$h" 'BEGIN{printf "%.2f", a/b}') |"
    if [[ -n $DBROUTER_BIN_B ]]; then
        b=${PER_QUERY[dbrouter_b.$workload]}
        row+=" $b | $(awk -v a="$b" -v b="$d" 'BEGIN{printf "%.2f", a/b}') |"
    fi
    echo "$row"
done
for path in "${PATHS[@]:1}"; do
    for workload in $WORKLOADS; do
        echo
        echo "$path, $workload: instructions per query of each function's own code (top $TOP)"
        cat "$OUT/$path.$workload.top.txt"
    done
done
echo
log "raw numbers: $CSV; callgrind dumps and logs: $OUT"
