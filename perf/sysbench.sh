#!/usr/bin/env bash
# perf/sysbench.sh: sysbench oltp_point_select and oltp_read_only at several
# thread counts against (a) MariaDB directly, (b) HAProxy in TCP mode (the
# cost floor of a plain forwarder) and (c) dbrouter, in one run.
#
# Everything (mariadbd, haproxy, dbrouter, sysbench) is started from this
# shell session, on 127.0.0.1, on free ports, in a temporary directory, and
# stopped on exit (also on Ctrl-C or failure). See perf/README.md.
#
# Environment (defaults in brackets):
#   TIME [20]          seconds per sysbench run
#   REPS [3]           repetitions of each (workload, threads) triplet
#   THREADS ["1 16 64"] client thread counts
#   WORKLOADS ["oltp_point_select oltp_read_only"]
#   TABLE_SIZE [100000] rows in the one table (sbtest1)
#   PS_MODE [default]  "disable" = text protocol (--db-ps-mode=disable);
#                      otherwise sysbench's default, server-side prepared
#                      statements (binary protocol)
#   REACTORS [2]       dbrouter --reactors
#   PIN [true]         dbrouter --pin-cores (false: the kernel places reactors)
#   HAPROXY_THREADS [$REACTORS] HAProxy's nbthread: as many threads as
#                      dbrouter has reactors, like for like
#   HAPROXY_PIN [$PIN] pin HAProxy's thread i to core i (cpu-map): by
#                      default as dbrouter's reactors, like for like
#   RESULTS_DIR [perf/results]
#   WARMUP [5]         seconds of warm-up per workload and path (0 = none)
#   OTHERS_MAX [15]    % of the machine used by other processes above which a
#                      triplet is rerun (once; RETRIES to change, 0 = never)
#   RETRIES [1]
#   QUIET_WAIT [60]    before each triplet, wait up to this many seconds for
#                      other processes to fall below OTHERS_MAX (0 = never)
#   DBROUTER_BIN [target/release/dbrouter]; built with cargo when missing or
#                      older than the sources unless BUILD=0
#   DBROUTER_BIN_B []  a second dbrouter binary (another build) to compare
#                      with the first: it runs as a fourth path,
#                      "dbrouter_b", in the same rotation, and a second table
#                      prints the paired ratios b/dbrouter (one shard only)
#   RUST_LOG [info]    dbrouter's log level (its log goes to the results dir)
#   SHARDS [1]         with N > 1, dbrouter routes to N shard servers (each
#                      holding only its buckets of sbtest1, sharded on `id`)
#                      while direct and HAProxy use the one unsharded server.
#                      sysbench then runs with --skip_trx=on
#                      --range_selects=off on every path: transactions and
#                      range scans span shards, which dbrouter refuses until
#                      scatter queries exist.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=perf/lib.sh
source "$ROOT/perf/lib.sh"
TIME=${TIME:-20}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 16 64"}
WORKLOADS=${WORKLOADS:-"oltp_point_select oltp_read_only"}
TABLE_SIZE=${TABLE_SIZE:-100000}
PS_MODE=${PS_MODE:-default}
REACTORS=${REACTORS:-2}
PIN=${PIN:-true}
HAPROXY_PIN=${HAPROXY_PIN:-$PIN}
HAPROXY_THREADS=${HAPROXY_THREADS:-$REACTORS}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/perf/results}
WARMUP=${WARMUP:-5}
OTHERS_MAX=${OTHERS_MAX:-15}
RETRIES=${RETRIES:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
BUILD=${BUILD:-1}
DBROUTER_BIN=${DBROUTER_BIN:-$ROOT/target/release/dbrouter}
DBROUTER_BIN_B=${DBROUTER_BIN_B:-}
export RUST_LOG=${RUST_LOG:-info}

PATHS=(direct haproxy dbrouter)
[[ -n $DBROUTER_BIN_B ]] && PATHS+=(dbrouter_b)
SB_USER=sbtest
SB_PASS=sbtest_pw
ADMIN_USER=dbrouter_admin
ADMIN_PASS=dbrouter_admin_pw
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
START_EPOCH=$(date +%s)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

require_integers 0 TIME REPS TABLE_SIZE REACTORS HAPROXY_THREADS WARMUP OTHERS_MAX RETRIES QUIET_WAIT
((TIME > 0 && REPS > 0 && HAPROXY_THREADS > 0)) || die "TIME, REPS and HAPROXY_THREADS must be at least 1"
for t in $THREADS; do [[ $t =~ ^[1-9][0-9]*$ ]] || die "bad thread count '$t'"; done
parse_ps_mode
require_commands mariadbd mariadb-install-db mariadb haproxy sysbench ss timeout

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/dbrouter-sysbench.XXXXXX) || die "mktemp failed"
OUT=$RESULTS_DIR/sysbench-$STAMP
CSV=$RESULTS_DIR/sysbench-$STAMP.csv
mkdir -p "$OUT" || die "cannot create $OUT"
MDB_PID="" HAP_PID="" DBR_PID="" DBRB_PID=""
SERVER_PIDS=()

cleanup() {
    trap - EXIT INT TERM
    stop_pid "$DBR_PID" dbrouter 10
    stop_pid "$DBRB_PID" dbrouter_b 10
    stop_pid "$HAP_PID" haproxy 10
    stop_servers
    [[ -f $TMP/dbrouter.log ]] && cp "$TMP/dbrouter.log" "$OUT/" 2>/dev/null
    [[ -f $TMP/dbrouter_b.log ]] && cp "$TMP/dbrouter_b.log" "$OUT/" 2>/dev/null
    [[ -f $TMP/mariadbd.err ]] && cp "$TMP/mariadbd.err" "$OUT/" 2>/dev/null
    [[ -f $TMP/haproxy.log ]] && cp "$TMP/haproxy.log" "$OUT/" 2>/dev/null
    [[ -f $TMP/haproxy.cfg ]] && cp "$TMP/haproxy.cfg" "$OUT/" 2>/dev/null
    rm -rf "$TMP"
    log "stopped everything; logs in $OUT"
}
install_traps

# ---------------------------------------------------------------- estimate
n_threads=$(wc -w <<<"$THREADS")
n_work=$(wc -w <<<"$WORKLOADS")
n_paths=${#PATHS[@]}
n_runs=$((n_work * n_threads * REPS * n_paths))
# ~4 s per run for connecting and parsing, ~60 s setup (install, prepare).
EST=$((n_runs * (TIME + 4) + n_work * n_paths * (WARMUP + 3) + 60))
# Hard limit: everything, every allowed rerun and then some.
LIMIT=$((EST * (1 + RETRIES) + n_runs / n_paths * (1 + RETRIES) * QUIET_WAIT + 300))
log "plan: $n_work workloads x $n_threads thread counts x $REPS reps x $n_paths paths = $n_runs runs of ${TIME}s, ps-mode=$PS_MODE"
log "estimated total time: ~$((EST / 60)) min $((EST % 60)) s on a quiet machine (hard limit $((LIMIT / 60)) min with waits and reruns)"

# ---------------------------------------------------------------- build
build_if_stale "$OUT/build.log"
[[ -x $DBROUTER_BIN ]] || die "no dbrouter binary at $DBROUTER_BIN"
if [[ -n $DBROUTER_BIN_B ]]; then
    [[ -x $DBROUTER_BIN_B ]] || die "no dbrouter binary at $DBROUTER_BIN_B (DBROUTER_BIN_B)"
    ((${SHARDS:-1} == 1)) || die "DBROUTER_BIN_B works with one shard only"
fi

# ---------------------------------------------------------------- ports
free_port && MDB_PORT=$PORT_FOUND || die "no free port"
free_port && HAP_PORT=$PORT_FOUND || die "no free port"
free_port && DBR_PORT=$PORT_FOUND || die "no free port"
free_port && DBRB_PORT=$PORT_FOUND || die "no free port"
declare -A PORT=([direct]=$MDB_PORT [haproxy]=$HAP_PORT [dbrouter]=$DBR_PORT [dbrouter_b]=$DBRB_PORT)

# ---------------------------------------------------------------- mariadbd
SB_COMMON=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-user="$SB_USER"
    --mysql-password="$SB_PASS" --mysql-db=sbtest --tables=1 --table-size="$TABLE_SIZE")
log "mariadbd in $TMP on 127.0.0.1:$MDB_PORT, sbtest1 of $TABLE_SIZE rows"
sbtest_server "$TMP" "$MDB_PORT" 256M "$OUT/prepare.log"
MDB_PID=$MARIADBD_PID
log "mariadbd $(root_sql -e 'SELECT VERSION()') (pid $MDB_PID)"

# ---------------------------------------------------------------- shards
SHARDS=${SHARDS:-1}
SHARD_PORTS=()
SB_EXTRA=()
if ((SHARDS > 1)); then
    SB_EXTRA=(--skip_trx=on --range_selects=off)
    BUCKETS=1024
    for ((i = 0; i < SHARDS; i++)); do
        free_port; port=$PORT_FOUND
        dir="$TMP/shard$i"
        shard_sql() { dir_sql "$dir" "$@"; }
        # The same rows as the unsharded server, then keep this shard's
        # buckets only: CRC32 of the key's decimal text modulo the bucket
        # count, equal contiguous ranges (README, "Which shard a key goes to").
        sbtest_server "$dir" "$port" 128M "$OUT/prepare-shard$i.log"
        SHARD_PORTS+=("$port")
        lo=$((i * BUCKETS / SHARDS)); hi=$(((i + 1) * BUCKETS / SHARDS - 1))
        shard_sql -e "DELETE FROM sbtest.sbtest1 WHERE CRC32(id) % $BUCKETS NOT BETWEEN $lo AND $hi"
        log "shard $i on 127.0.0.1:$port (pid $MARIADBD_PID): buckets $lo-$hi, $(shard_sql -e 'SELECT COUNT(*) FROM sbtest.sbtest1') rows"
    done
    {
        echo "[proxy]"
        echo "listen = \"127.0.0.1:$DBR_PORT\""
        echo "reactors = $REACTORS"
        echo "[backend_users]"
        echo "admin_user = \"$ADMIN_USER\""
        echo "admin_password = \"$ADMIN_PASS\""
        echo "[sharding]"
        echo "buckets = $BUCKETS"
        echo "[[table]]"
        echo "name = \"sbtest1\""
        echo "key = \"id\""
        echo "key_type = \"int\""
        for ((i = 0; i < SHARDS; i++)); do
            echo "[[shard]]"
            echo "id = $i"
            echo "master = \"127.0.0.1:${SHARD_PORTS[$i]}\""
        done
    } >"$TMP/dbrouter.toml"
fi

# ---------------------------------------------------------------- haproxy
start_haproxy "$HAP_PORT" "$MDB_PORT" 4096

# ---------------------------------------------------------------- dbrouter
if ((SHARDS > 1)); then
    "$DBROUTER_BIN" --config "$TMP/dbrouter.toml" --pin-cores "$PIN" >"$TMP/dbrouter.log" 2>&1 &
    DBR_PID=$!
else
    start_dbrouter "$DBROUTER_BIN" "$DBR_PORT" "$MDB_PORT" "$TMP/dbrouter.log"
    DBR_PID=$STARTED_PID
fi
if [[ -n $DBROUTER_BIN_B ]]; then
    start_dbrouter "$DBROUTER_BIN_B" "$DBRB_PORT" "$MDB_PORT" "$TMP/dbrouter_b.log"
    DBRB_PID=$STARTED_PID
fi

wait_sql "$HAP_PORT" "$SB_USER" "$SB_PASS" 20 || { cat "$TMP/haproxy.log" >&2; die "haproxy not answering on $HAP_PORT"; }
if ! wait_sql "$DBR_PORT" "$SB_USER" "$SB_PASS" 30; then
    tail -30 "$TMP/dbrouter.log" >&2
    die "dbrouter not answering on $DBR_PORT"
fi
if [[ -n $DBRB_PID ]] && ! wait_sql "$DBRB_PORT" "$SB_USER" "$SB_PASS" 30; then
    tail -30 "$TMP/dbrouter_b.log" >&2
    die "dbrouter_b not answering on $DBRB_PORT"
fi
declare -A PID=([direct]=$MDB_PID [haproxy]=$HAP_PID [dbrouter]=$DBR_PID [dbrouter_b]=$DBRB_PID)
declare -A DBR_LOG=([dbrouter]=$TMP/dbrouter.log [dbrouter_b]=$TMP/dbrouter_b.log)
log "haproxy on $HAP_PORT (pid $HAP_PID), dbrouter on $DBR_PORT (pid $DBR_PID, $REACTORS reactors, $(basename "$DBROUTER_BIN") built $(date -r "$DBROUTER_BIN" '+%F %T'))"
[[ -n $DBRB_PID ]] && log "dbrouter_b on $DBRB_PORT (pid $DBRB_PID, $DBROUTER_BIN_B built $(date -r "$DBROUTER_BIN_B" '+%F %T'))"
GIT_REV=$(git_rev)
{
    echo "date_utc=$STAMP git=$GIT_REV ncpu=$NCPU kernel=$(uname -r)"
    echo "TIME=$TIME REPS=$REPS THREADS='$THREADS' WORKLOADS='$WORKLOADS' TABLE_SIZE=$TABLE_SIZE PS_MODE=$PS_MODE REACTORS=$REACTORS PIN=$PIN HAPROXY_THREADS=$HAPROXY_THREADS HAPROXY_PIN=$HAPROXY_PIN SHARDS=$SHARDS sysbench_extra='${SB_EXTRA[*]}'"
    echo "DBROUTER_BIN=$DBROUTER_BIN DBROUTER_BIN_B=$DBROUTER_BIN_B"
    tool_versions
} >"$OUT/meta.txt"

# ---------------------------------------------------------------- measuring
# CPU ticks of every database server (the unsharded one and the shards)
# -> TICKS: with shards, the dbrouter path's server CPU is theirs.
servers_ticks() { sum_ticks "${SERVER_PIDS[@]}"; }
# Our long-running processes (proxies and servers), for wait_quiet and for
# the "others" column -> TICKS.
ours_ticks() { sum_ticks "$HAP_PID" "$DBR_PID" "$DBRB_PID" "${SERVER_PIDS[@]}"; }

echo "stamp,ps_mode,rep,workload,threads,order,path,status,time_s,wall_s,queries,qps,tps,p95_ms,errors,reconnects,proxy_cpu_s,proxy_cpu_s_per_1kq,mariadbd_cpu_s,mariadbd_cpu_s_per_1kq,sysbench_cpu_s,others_cpu_pct,steal_pct,valid,proxy_user_cpu_s_per_1kq,proxy_voluntary_switches_per_query,proxy_involuntary_switches_per_query" >"$CSV"

RUN_SEQ=0
# run_one path workload threads seconds rep order: one sysbench run; appends a
# CSV row unless rep is "warmup"; sets LAST_OTHERS (percent) and LAST_OK.
run_one() {
    local path=$1 wl=$2 thr=$3 secs=$4 rep=$5 order=$6
    local port=${PORT[$path]} out
    RUN_SEQ=$((RUN_SEQ + 1))
    out=$OUT/run-$(printf %03d $RUN_SEQ)-$wl-t$thr-r$rep-$path.txt
    LAST_OTHERS=0 LAST_OK=0
    if [[ $path == dbrouter* ]] && ! kill -0 "${PID[$path]}" 2>/dev/null; then
        log "$path is not running: skipping"
        [[ $rep == warmup ]] || echo "$STAMP,$PS_MODE,$rep,$wl,$thr,$order,$path,dbrouter-dead,$secs,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0" >>"$CSV"
        return
    fi
    # The proxy of this path (none for direct): its CPU and its threads'
    # context switches are read before and after.
    local ppid=""
    [[ $path != direct ]] && ppid=${PID[$path]}
    local p0 pu0 p1 pu1 v0 i0 v1 i1 m0 c0 mt0 st0 t0 m1 c1 mt1 st1 t1 rc o0 o1
    proc_ticks "$ppid"; p0=$TICKS pu0=$UTICKS; proc_switches "$ppid"; v0=$VCS i0=$ICS
    ours_ticks; o0=$TICKS; servers_ticks; m0=$TICKS
    machine_ticks; mt0=$BUSY st0=$STEAL
    t0=${EPOCHREALTIME/./}
    children_ticks; c0=$CTICKS
    timeout --foreground -k 10 $((secs + 60)) \
        sysbench "$wl" "${SB_COMMON[@]}" "${SB_EXTRA[@]}" "${PS_ARGS[@]}" --mysql-port="$port" \
        --threads="$thr" --time="$secs" --events=0 --percentile=95 --histogram=off run \
        >"$out" 2>&1
    rc=$?
    children_ticks; c1=$CTICKS
    t1=${EPOCHREALTIME/./}
    machine_ticks; mt1=$BUSY st1=$STEAL
    proc_ticks "$ppid"; p1=$TICKS pu1=$UTICKS; proc_switches "$ppid"; v1=$VCS i1=$ICS
    ours_ticks; o1=$TICKS; servers_ticks; m1=$TICKS

    parse_sysbench "$out"
    local queries=$SB_QUERIES qps=$SB_QPS tps=$SB_TPS p95=$SB_P95 errs=$SB_ERRS recon=$SB_RECON status
    status=$(run_status "$rc")
    # Here any ignored error or reconnect fails the run.
    if [[ $status == ok ]] && ((${errs:-0} > 0 || ${recon:-0} > 0)); then status=errors; fi
    if [[ $status == ok ]] && grep -q -E 'FATAL|ALERT|WARNING' "$out"; then status=errors-logged; fi
    # Dead proxy after the run?
    if [[ $path != direct ]] && ! kill -0 "${PID[$path]}" 2>/dev/null; then status="$status+proxy-died"; fi

    local m=$((m1 - m0)) proxy=$((p1 - p0)) proxy_user=$((pu1 - pu0)) row
    # "Ours": every proxy and server of the run, busy or not.
    row=$(cpu_row $((t1 - t0)) "${queries:-0}" "$proxy" "$m" $((o1 - o0)) $((c1 - c0)) $((mt1 - mt0)) $((st1 - st0)))
    local wall proxy_s p1k m_s m1k c_s others steal
    IFS=, read -r wall proxy_s p1k m_s m1k c_s others steal <<<"$row"
    LAST_OTHERS=${others%.*}
    # The proxy's CPU in user space (its own code and libc), the rest being
    # the kernel's work for it: syscalls, the TCP stack, the scheduler.
    # Its threads' context switches per query: voluntary ones are waits in
    # epoll_wait (the proxy ran out of work), involuntary ones preemptions.
    local u1k vq iq
    read -r u1k vq iq < <(awk -v t="$proxy_user" -v hz="$HZ" -v q="${queries:-0}" -v v=$((v1 - v0)) -v i=$((i1 - i0)) \
        'BEGIN { printf "%.6f %.4f %.4f\n", (q > 0 ? t / hz / q * 1000 : 0), (q > 0 ? v / q : 0), (q > 0 ? i / q : 0) }')
    [[ $status == ok ]] && LAST_OK=1
    if [[ $rep != warmup ]]; then
        echo "$STAMP,$PS_MODE,$rep,$wl,$thr,$order,$path,$status,$secs,$wall,${queries:-0},${qps:-0},${tps:-0},${p95:-0},${errs:-0},${recon:-0},$proxy_s,$p1k,$m_s,$m1k,$c_s,$others,$steal,1,$u1k,$vq,$iq" >>"$CSV"
    fi
    printf '  %-9s %-18s t=%-3s rep=%-6s qps=%-10s p95=%-7s proxy_cpu/1kq=%-9s others=%s%% steal=%s%% %s\n' \
        "$path" "$wl" "$thr" "$rep" "${qps:-?}" "${p95:-?}" "$p1k" "$others" "$steal" "$status" >&2
    if [[ $status != ok ]]; then
        local dbr_log=""
        [[ $path == dbrouter* ]] && dbr_log=${DBR_LOG[$path]}
        show_failed_run "$path" "$wl" "$thr" "$status" "$out" "$dbr_log"
    fi
}

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per workload and path"
    for wl in $WORKLOADS; do
        for path in "${PATHS[@]}"; do run_one "$path" "$wl" 16 "$WARMUP" warmup 0; done
    done
fi

run_reps "$( ((n_paths == 4)) && echo quadruplet || echo triplet)"

# ---------------------------------------------------------------- summary
SUMMARY=$OUT/summary.md
awk -F, -v ps="$PS_MODE" "$AWK_STATS"'
NR == 1 { next }
$24 != 1 { next }
{
    k = $4 SUBSEP $5
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    if ($8 != "ok") { bad[k]++; next }
    add(qps, k SUBSEP $7, $12); add(p95, k SUBSEP $7, $14)
    if ($7 != "direct") { add(cpu, k SUBSEP $7, $18); add(ucpu, k SUBSEP $7, $25) }
    add(mcpu, k SUBSEP $7, $20)
    r = k SUBSEP $3; rq[r SUBSEP $7] = $12
    if (!((k, $3) in reps)) { reps[k, $3] = 1; rl[k] = rl[k] " " $3 }
    if ($22 + 0 > omax[k] + 0) omax[k] = $22
}
END {
    printf "| workload (%s) | threads | QPS direct | QPS haproxy | QPS dbrouter | p95 ms direct | p95 haproxy | p95 dbrouter | dbrouter/direct | dbrouter/haproxy | CPU s/1kq haproxy | CPU s/1kq dbrouter | user CPU s/1kq haproxy/dbrouter | mariadbd CPU s/1kq direct/haproxy/dbrouter | reps | max others %% |\n", ps
    print "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, kk, SUBSEP)
        rd = ""; rh = ""; n = split(rl[k], rr, " ")
        for (j = 1; j <= n; j++) {
            r = k SUBSEP rr[j]
            if ((r SUBSEP "dbrouter") in rq && (r SUBSEP "direct") in rq && rq[r SUBSEP "direct"] > 0)
                rd = rd " " rq[r SUBSEP "dbrouter"] / rq[r SUBSEP "direct"]
            if ((r SUBSEP "dbrouter") in rq && (r SUBSEP "haproxy") in rq && rq[r SUBSEP "haproxy"] > 0)
                rh = rh " " rq[r SUBSEP "dbrouter"] / rq[r SUBSEP "haproxy"]
        }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d%s | %s |\n", kk[1], kk[2],
            fmt(median(qps[k, "direct"]), "%.0f"), fmt(median(qps[k, "haproxy"]), "%.0f"), fmt(median(qps[k, "dbrouter"]), "%.0f"),
            fmt(median(p95[k, "direct"]), "%.2f"), fmt(median(p95[k, "haproxy"]), "%.2f"), fmt(median(p95[k, "dbrouter"]), "%.2f"),
            fmt(median(rd), "%.2f"), fmt(median(rh), "%.2f"),
            fmt(median(cpu[k, "haproxy"]), "%.4f"), fmt(median(cpu[k, "dbrouter"]), "%.4f"),
            fmt(median(ucpu[k, "haproxy"]), "%.4f") "/" fmt(median(ucpu[k, "dbrouter"]), "%.4f"),
            fmt(median(mcpu[k, "direct"]), "%.4f") "/" fmt(median(mcpu[k, "haproxy"]), "%.4f") "/" fmt(median(mcpu[k, "dbrouter"]), "%.4f"),
            n, (bad[k] ? " (" bad[k] " failed)" : ""), omax[k] + 0
    }
}
' "$CSV" >"$SUMMARY"

# Each proxy's threads' context switches per query: voluntary ones mean it
# ran out of work (waited in epoll_wait), involuntary ones that it was
# preempted; at 64 threads on 2 vCPUs both proxies are almost never idle.
# With DBROUTER_BIN_B, the second build against the first, rep by rep.
awk -F, -v b="${DBROUTER_BIN_B:+1}" "$AWK_STATS"'
NR == 1 || $24 != 1 || $8 != "ok" { next }
{
    k = $4 SUBSEP $5
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    if ($7 != "direct") { add(vcs, k SUBSEP $7, $26); add(ics, k SUBSEP $7, $27) }
    r = k SUBSEP $3; q[r SUBSEP $7] = $12; c[r SUBSEP $7] = $18
    if (!((k, $3) in reps)) { reps[k, $3] = 1; rl[k] = rl[k] " " $3 }
}
function sw(k, p) { return fmt(median(vcs[k, p]), "%.3f") "/" fmt(median(ics[k, p]), "%.3f") }
END {
    printf "\n| workload | threads | switches/query haproxy (vol/invol) | dbrouter | %s\n", (b ? "dbrouter_b | QPS dbrouter_b | b/dbrouter QPS | b/haproxy QPS | b/dbrouter QPS, mean log ratio +- s.e. | b/dbrouter CPU per query |" : "")
    printf "|---|--:|--:|--:|%s\n", (b ? "--:|--:|--:|--:|--:|--:|" : "")
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, kk, SUBSEP)
        printf "| %s | %s | %s | %s |", kk[1], kk[2], sw(k, "haproxy"), sw(k, "dbrouter")
        if (b) {
            rq = ""; rh = ""; rc = ""; n = split(rl[k], rr, " "); m = 0; sum = 0; sq = 0
            for (j = 1; j <= n; j++) {
                r = k SUBSEP rr[j]
                if (!((r SUBSEP "dbrouter_b") in q)) continue
                add(qs, "x", q[r SUBSEP "dbrouter_b"])
                if ((r SUBSEP "dbrouter") in q && q[r SUBSEP "dbrouter"] > 0) {
                    x = q[r SUBSEP "dbrouter_b"] / q[r SUBSEP "dbrouter"]; rq = rq " " x
                    m++; sum += log(x); sq += log(x) ^ 2
                    if (c[r SUBSEP "dbrouter"] > 0) rc = rc " " c[r SUBSEP "dbrouter_b"] / c[r SUBSEP "dbrouter"]
                }
                if ((r SUBSEP "haproxy") in q && q[r SUBSEP "haproxy"] > 0) rh = rh " " q[r SUBSEP "dbrouter_b"] / q[r SUBSEP "haproxy"]
            }
            mean = (m > 0) ? sum / m : 0
            se = (m > 1) ? sqrt((sq - m * mean ^ 2) / (m - 1) / m) : 0
            printf " %s | %s | %s | %s | %s | %s |", sw(k, "dbrouter_b"), fmt(median(qs["x"]), "%.0f"),
                fmt(median(rq), "%.3f"), fmt(median(rh), "%.3f"),
                (m > 1 ? sprintf("%+.3f +- %.3f (n=%d)", mean, se, m) : "-"), fmt(median(rc), "%.3f")
        }
        printf "\n"
        delete qs
    }
}
' "$CSV" >>"$SUMMARY"

echo
echo "sysbench via direct / haproxy (mode tcp, nbthread $HAPROXY_THREADS, pinned: $HAPROXY_PIN) / dbrouter (--reactors $REACTORS --pin-cores $PIN)," \
    "TIME=${TIME}s, REPS=$REPS, table_size=$TABLE_SIZE, ps-mode=$PS_MODE, $NCPU vCPU, $(date -u '+%F %H:%M') UTC, git $GIT_REV"
echo "medians over repetitions; ratios are medians of the per-repetition ratios"
[[ -n $DBROUTER_BIN_B ]] && echo "dbrouter: $DBROUTER_BIN; dbrouter_b: $DBROUTER_BIN_B"
echo
cat "$SUMMARY"
echo
failed=$(awk -F, 'NR > 1 && $24 == 1 && $8 != "ok"' "$CSV" | wc -l)
((failed > 0)) && log "WARNING: $failed runs failed; see status in $CSV and the run-*.txt files in $OUT"
errlines=$(grep -c -i -E 'error|panic|warn' "$TMP/dbrouter.log" 2>/dev/null)
((${errlines:-0} > 0)) && log "dbrouter log has $errlines error/warn lines (copied to $OUT/dbrouter.log)"
log "raw numbers: $CSV; sysbench outputs and logs: $OUT; took $(($(date +%s) - START_EPOCH)) s"
