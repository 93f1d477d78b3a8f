#!/usr/bin/env bash
# perf/pool.sh: transaction pooling under load (issue 4). In one run:
#
# 1. sysbench oltp_read_write and oltp_point_select at 64 and 256 client
#    threads against four paths to the same server: MariaDB directly, HAProxy
#    in TCP mode, dbrouter in session mode and dbrouter in transaction mode
#    ([pool] max_per_shard = POOL_MAX), back to back, order rotated each
#    repetition; QPS, p95, paired ratios, proxy and server CPU per query, and
#    the largest number of backend connections the server saw during each run
#    (information_schema.PROCESSLIST sampled every SAMPLE_MS).
# 2. "2,000 clients": oltp_point_select with CLIENTS threads through dbrouter
#    in transaction mode only; QPS, errors, reconnects, and PASS/FAIL for "the
#    server never saw more than POOL_MAX backend connections".
#
# Everything (mariadbd, haproxy, both dbrouters, the sampler, sysbench) is
# started from this shell session, on 127.0.0.1, on free ports, in a temporary
# directory, and stopped on exit (also on Ctrl-C or failure). Same method as
# perf/sysbench.sh; see perf/README.md.
#
# Environment (defaults in brackets):
#   TIME [20]          seconds per sysbench run
#   REPS [3]           repetitions of each (workload, threads) quadruplet
#   THREADS ["64 256"] client thread counts
#   WORKLOADS ["oltp_read_write oltp_point_select"]
#   TABLE_SIZE [100000] rows in the one table (sbtest1)
#   PS_MODE [default]  "disable" = text protocol (--db-ps-mode=disable);
#                      otherwise server-side prepared statements
#   REACTORS [2]       reactors of each dbrouter
#   PIN [true]         dbrouter pin_cores
#   POOL_MAX [32]      [pool] max_per_shard of the transaction-mode dbrouter
#   POOL_WAIT_MS [5000] [pool] wait_timeout_ms (ERR 1040 after this)
#   CLIENTS [2000]     client threads of the "2,000 clients" step (0 = skip)
#   CLIENTS_TIME [TIME] its seconds
#   CLIENTS_IGNORE ["1040,2013"] --mysql-ignore-errors of that step: these
#                      errors are counted (2013: reconnects) instead of ending
#                      the run at the first one
#   SAMPLE_MS [200]    backend connection sampling period
#   MAX_CONNECTIONS [3000] mariadbd --max-connections
#   RESULTS_DIR [perf/results]
#   WARMUP [5]         seconds of warm-up per workload and path at 16 threads
#   OTHERS_MAX [15]    % of the machine used by other processes above which a
#                      quadruplet is rerun (RETRIES times; 0 = never)
#   RETRIES [1]
#   QUIET_WAIT [60]    before each quadruplet, wait up to this many seconds for
#                      other processes to fall below OTHERS_MAX (0 = never)
#   DBROUTER_BIN [${CARGO_TARGET_DIR:-target}/release/dbrouter]; built with
#                      cargo when missing or older than the sources unless
#                      BUILD=0
#   RUST_LOG [info]    dbrouter's log level (logs go to the results dir)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=perf/lib.sh
source "$ROOT/perf/lib.sh"
TIME=${TIME:-20}
REPS=${REPS:-3}
THREADS=${THREADS:-"64 256"}
WORKLOADS=${WORKLOADS:-"oltp_read_write oltp_point_select"}
TABLE_SIZE=${TABLE_SIZE:-100000}
PS_MODE=${PS_MODE:-default}
REACTORS=${REACTORS:-2}
PIN=${PIN:-true}
POOL_MAX=${POOL_MAX:-32}
POOL_WAIT_MS=${POOL_WAIT_MS:-5000}
CLIENTS=${CLIENTS:-2000}
CLIENTS_TIME=${CLIENTS_TIME:-$TIME}
CLIENTS_IGNORE=${CLIENTS_IGNORE-1040,2013}
SAMPLE_MS=${SAMPLE_MS:-200}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-3000}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/perf/results}
WARMUP=${WARMUP:-5}
OTHERS_MAX=${OTHERS_MAX:-15}
RETRIES=${RETRIES:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
BUILD=${BUILD:-1}
DBROUTER_BIN=${DBROUTER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/dbrouter}
export RUST_LOG=${RUST_LOG:-info}

# Paths: direct, haproxy, dbrouter in session mode, dbrouter in transaction
# mode. Each path logs in to the server as its own account (same password,
# same grants), so that PROCESSLIST tells whose connections are whose: the
# transaction-mode dbrouter keeps its idle pool open while the other paths
# run.
PATHS=(direct haproxy session txn)
declare -A LABEL=([direct]=direct [haproxy]=haproxy [session]="dbrouter session" [txn]="dbrouter transaction")
declare -A SB_USER=([direct]=sb_direct [haproxy]=sb_haproxy [session]=sb_session [txn]=sb_txn)
SB_PASS=sbtest_pw
ADMIN_USER=dbrouter_admin
ADMIN_PASS=dbrouter_admin_pw
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
START_EPOCH=$(date +%s)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

require_integers 0 TIME REPS TABLE_SIZE REACTORS POOL_MAX POOL_WAIT_MS CLIENTS CLIENTS_TIME SAMPLE_MS \
    MAX_CONNECTIONS WARMUP OTHERS_MAX RETRIES QUIET_WAIT
((TIME > 0 && REPS > 0 && SAMPLE_MS > 0)) || die "TIME, REPS and SAMPLE_MS must be at least 1"
((POOL_MAX >= REACTORS)) || die "POOL_MAX ($POOL_MAX) must be at least REACTORS ($REACTORS)"
max_thr=$CLIENTS
for t in $THREADS; do
    [[ $t =~ ^[1-9][0-9]*$ ]] || die "bad thread count '$t'"
    ((t > max_thr)) && max_thr=$t
done
((MAX_CONNECTIONS >= max_thr + 50)) || die "MAX_CONNECTIONS ($MAX_CONNECTIONS) must exceed the largest thread count ($max_thr) by 50"
parse_ps_mode
require_commands mariadbd mariadb-install-db mariadb haproxy sysbench ss timeout mkfifo
SAMPLE_S=$(printf '%d.%03d' $((SAMPLE_MS / 1000)) $((SAMPLE_MS % 1000)))

# File descriptors: sysbench and dbrouter each hold one per client (dbrouter
# also its backend connections), mariadbd one per connection. Every process
# started below inherits this limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] || ((NOFILE >= max_thr + 500)) ||
    die "open files limit $NOFILE (hard $(ulimit -Hn)) is too low for $max_thr clients: raise it (ulimit -Hn) or lower CLIENTS"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/dbrouter-pool.XXXXXX) || die "mktemp failed"
OUT=$RESULTS_DIR/pool-$STAMP
CSV=$RESULTS_DIR/pool-$STAMP.csv
mkdir -p "$OUT" || die "cannot create $OUT"
MDB_PID="" HAP_PID="" DBS_PID="" DBT_PID="" SAMPLER_PID="" SAMPLER_LOOP_PID=""

cleanup() {
    trap - EXIT INT TERM
    stop_pid "$SAMPLER_LOOP_PID" sampler 5
    stop_pid "$SAMPLER_PID" "sampler client" 5
    stop_pid "$DBT_PID" "dbrouter (transaction)" 10
    stop_pid "$DBS_PID" "dbrouter (session)" 10
    stop_pid "$HAP_PID" haproxy 10
    stop_pid "$MDB_PID" mariadbd 60
    local f
    for f in dbrouter-session.log dbrouter-txn.log dbrouter-session.toml dbrouter-txn.toml \
        mariadbd.err haproxy.log haproxy.cfg samples.tsv sampler.err; do
        [[ -f $TMP/$f ]] && cp "$TMP/$f" "$OUT/" 2>/dev/null
    done
    rm -rf "$TMP"
    log "stopped everything; logs in $OUT"
}
install_traps

# ---------------------------------------------------------------- estimate
n_threads=$(wc -w <<<"$THREADS")
n_work=$(wc -w <<<"$WORKLOADS")
n_paths=${#PATHS[@]}
n_runs=$((n_work * n_threads * REPS * n_paths))
# ~5 s per run for connecting and parsing, ~90 s setup (install, prepare),
# the clients step with a minute for 2,000 connections.
EST=$((n_runs * (TIME + 5) + n_work * n_paths * (WARMUP + 3) + 90 + (CLIENTS > 0 ? CLIENTS_TIME + 60 : 0)))
LIMIT=$((EST * (1 + RETRIES) + n_runs / n_paths * (1 + RETRIES) * QUIET_WAIT + 600))
log "plan: $n_work workloads x $n_threads thread counts x $REPS reps x $n_paths paths = $n_runs runs of ${TIME}s, ps-mode=$PS_MODE, then $CLIENTS clients for ${CLIENTS_TIME}s"
log "estimated total time: ~$((EST / 60)) min $((EST % 60)) s on a quiet machine (hard limit $((LIMIT / 60)) min with waits and reruns)"

# ---------------------------------------------------------------- build
build_if_stale "$OUT/build.log" "${CARGO_TARGET_DIR:+, CARGO_TARGET_DIR=$CARGO_TARGET_DIR}"
[[ -x $DBROUTER_BIN ]] || die "no dbrouter binary at $DBROUTER_BIN"

# ---------------------------------------------------------------- ports
free_port && MDB_PORT=$PORT_FOUND || die "no free port"
free_port && HAP_PORT=$PORT_FOUND || die "no free port"
free_port && DBS_PORT=$PORT_FOUND || die "no free port"
free_port && DBT_PORT=$PORT_FOUND || die "no free port"
declare -A PORT=([direct]=$MDB_PORT [haproxy]=$HAP_PORT [session]=$DBS_PORT [txn]=$DBT_PORT)

# ---------------------------------------------------------------- mariadbd
log "mariadbd: installing a data directory in $TMP/data"
install_datadir "$TMP" || die "mariadb-install-db failed"
start_mariadbd "$TMP" "$MDB_PORT" --tmpdir="$TMP" \
    --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M \
    --performance-schema=OFF --skip-name-resolve --max-connections="$MAX_CONNECTIONS"
MDB_PID=$MARIADBD_PID
wait_mariadbd "$TMP" "$MDB_PID"
log "mariadbd $(root_sql -e 'SELECT VERSION()') on 127.0.0.1:$MDB_PORT (pid $MDB_PID), max_connections $(root_sql -e 'SELECT @@max_connections'), open_files_limit $(root_sql -e 'SELECT @@open_files_limit')"

drop_anonymous_users "$TMP"
{
    echo "CREATE DATABASE sbtest;"
    for path in "${PATHS[@]}"; do
        echo "CREATE USER '${SB_USER[$path]}'@'127.0.0.1' IDENTIFIED BY '$SB_PASS';"
        echo "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON sbtest.* TO '${SB_USER[$path]}'@'127.0.0.1';"
    done
    echo "CREATE USER '$ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PASS';"
    echo "GRANT SELECT ON mysql.* TO '$ADMIN_USER'@'127.0.0.1';"
    echo "FLUSH PRIVILEGES;"
} | root_sql || die "cannot create users"

SB_COMMON=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-password="$SB_PASS"
    --mysql-db=sbtest --tables=1 --table-size="$TABLE_SIZE")
log "sysbench prepare: 1 table, $TABLE_SIZE rows"
timeout 600 sysbench oltp_read_write "${SB_COMMON[@]}" --mysql-user="${SB_USER[direct]}" \
    --mysql-port="$MDB_PORT" prepare >"$OUT/prepare.log" 2>&1 ||
    { tail -20 "$OUT/prepare.log" >&2; die "sysbench prepare failed"; }

# ---------------------------------------------------------------- sampler
# One persistent client on the unix socket (as root, so not counted) runs
# this query every SAMPLE_MS; a bash loop feeds it through a FIFO and paces
# itself with `read -t` on another FIFO (no fork per sample). Columns: server
# time, then each path's account's connection count. --force: an error (the
# server failing on its temporary table, say) skips a sample, not the rest.
# mariadbd keeps its temporary files in $TMP (--tmpdir): /tmp is shared with
# jobs that clean it.
SAMPLE_SQL="SELECT UNIX_TIMESTAMP(NOW(6))"
for path in "${PATHS[@]}"; do SAMPLE_SQL+=", SUM(USER='${SB_USER[$path]}')"; done
SAMPLE_SQL+=" FROM information_schema.PROCESSLIST;"
declare -A SAMPLE_COL=([direct]=2 [haproxy]=3 [session]=4 [txn]=5)
mkfifo "$TMP/sampler.fifo" "$TMP/tick.fifo" || die "mkfifo failed"
sampler_loop() {
    exec 8<>"$TMP/tick.fifo"
    while :; do
        printf '%s\n' "$SAMPLE_SQL" || exit 0
        read -r -t "$SAMPLE_S" -u 8 _
    done
}
sampler_loop >"$TMP/sampler.fifo" &
SAMPLER_LOOP_PID=$!
mariadb --no-defaults -S "$TMP/sock" -uroot -N -B --unbuffered --force <"$TMP/sampler.fifo" \
    >"$TMP/samples.tsv" 2>"$TMP/sampler.err" &
SAMPLER_PID=$!
sleep 1
[[ -s $TMP/samples.tsv ]] || { cat "$TMP/sampler.err" >&2; die "the connection sampler writes nothing"; }

# ---------------------------------------------------------------- haproxy
start_haproxy "$HAP_PORT" "$MDB_PORT" $((max_thr * 2 + 100)) $((max_thr + 50))

# ---------------------------------------------------------------- dbrouters
# Both from a file, identical but for pool_mode ([pool] is only read in
# transaction mode).
write_dbrouter_config() { # file port mode
    cat >"$1" <<TOML
[proxy]
listen = "127.0.0.1:$2"
reactors = $REACTORS
pin_cores = $PIN
pool_mode = "$3"

[backend_users]
admin_user = "$ADMIN_USER"
admin_password = "$ADMIN_PASS"

[[shard]]
id = 0
master = "127.0.0.1:$MDB_PORT"

[pool]
max_per_shard = $POOL_MAX
wait_timeout_ms = $POOL_WAIT_MS
TOML
}
write_dbrouter_config "$TMP/dbrouter-session.toml" "$DBS_PORT" session
write_dbrouter_config "$TMP/dbrouter-txn.toml" "$DBT_PORT" transaction
"$DBROUTER_BIN" --config "$TMP/dbrouter-session.toml" >"$TMP/dbrouter-session.log" 2>&1 &
DBS_PID=$!
"$DBROUTER_BIN" --config "$TMP/dbrouter-txn.toml" >"$TMP/dbrouter-txn.log" 2>&1 &
DBT_PID=$!

wait_sql "$HAP_PORT" "${SB_USER[haproxy]}" "$SB_PASS" 20 || { cat "$TMP/haproxy.log" >&2; die "haproxy not answering on $HAP_PORT"; }
if ! wait_sql "$DBS_PORT" "${SB_USER[session]}" "$SB_PASS" 30; then
    tail -30 "$TMP/dbrouter-session.log" >&2
    die "dbrouter (session) not answering on $DBS_PORT"
fi
if ! wait_sql "$DBT_PORT" "${SB_USER[txn]}" "$SB_PASS" 30; then
    tail -30 "$TMP/dbrouter-txn.log" >&2
    die "dbrouter (transaction) not answering on $DBT_PORT"
fi
declare -A PID=([direct]=$MDB_PID [haproxy]=$HAP_PID [session]=$DBS_PID [txn]=$DBT_PID)
log "haproxy on $HAP_PORT (pid $HAP_PID); dbrouter session mode on $DBS_PORT (pid $DBS_PID), transaction mode on $DBT_PORT (pid $DBT_PID, max_per_shard $POOL_MAX); $REACTORS reactors each; $(basename "$DBROUTER_BIN") built $(date -r "$DBROUTER_BIN" '+%F %T'); open files limit $NOFILE"
GIT_REV=$(git_rev)
{
    echo "date_utc=$STAMP git=$GIT_REV ncpu=$NCPU kernel=$(uname -r) dbrouter_bin=$DBROUTER_BIN built=$(date -r "$DBROUTER_BIN" '+%FT%T')"
    echo "TIME=$TIME REPS=$REPS THREADS='$THREADS' WORKLOADS='$WORKLOADS' TABLE_SIZE=$TABLE_SIZE PS_MODE=$PS_MODE REACTORS=$REACTORS PIN=$PIN POOL_MAX=$POOL_MAX POOL_WAIT_MS=$POOL_WAIT_MS CLIENTS=$CLIENTS CLIENTS_TIME=$CLIENTS_TIME CLIENTS_IGNORE=$CLIENTS_IGNORE SAMPLE_MS=$SAMPLE_MS MAX_CONNECTIONS=$MAX_CONNECTIONS nofile=$NOFILE"
    tool_versions
    echo "loadavg_at_start=$(cat /proc/loadavg)"
} >"$OUT/meta.txt"

# ---------------------------------------------------------------- measuring
# Every long-running process of ours (servers, proxies, sampler) -> TICKS:
# not counted as "others".
ours_ticks() { sum_ticks "$MDB_PID" "$HAP_PID" "$DBS_PID" "$DBT_PID" "$SAMPLER_PID" "$SAMPLER_LOOP_PID"; }
# conns_max path t0 t1 (epoch seconds with decimals): the largest connection
# count of the path's account, and of all four accounts together, in the
# samples taken between t0 and t1 -> CONNS CONNS_ALL NSAMPLES.
conns_max() {
    local col=${SAMPLE_COL[$1]}
    read -r CONNS CONNS_ALL NSAMPLES < <(awk -F'\t' -v c="$col" -v t0="$2" -v t1="$3" '
        $1 + 0 >= t0 + 0 && $1 + 0 <= t1 + 0 {
            n++; if ($c + 0 > m) m = $c + 0
            a = $2 + $3 + $4 + $5; if (a > ma) ma = a
        }
        END { if (n) print m, ma, n; else print "-", "-", 0 }' "$TMP/samples.tsv")
}
us_to_s() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }

echo "stamp,ps_mode,rep,workload,threads,order,path,status,time_s,wall_s,queries,qps,tps,p95_ms,errors,reconnects,proxy_cpu_s,proxy_cpu_s_per_1kq,mariadbd_cpu_s,mariadbd_cpu_s_per_1kq,sysbench_cpu_s,backend_conns_max,all_sb_conns_max,samples,others_cpu_pct,steal_pct,valid" >"$CSV"

RUN_SEQ=0
# run_one path workload threads seconds rep order [extra sysbench args...]:
# one sysbench run; appends a CSV row unless rep is "warmup"; sets
# LAST_OTHERS (percent), LAST_OK, LAST_STATUS, LAST_QPS, LAST_P95,
# LAST_ERRS, LAST_RECON, LAST_CONNS, LAST_NSAMPLES, LAST_OUT.
run_one() {
    local path=$1 wl=$2 thr=$3 secs=$4 rep=$5 order=$6
    shift 6
    local port=${PORT[$path]} out
    RUN_SEQ=$((RUN_SEQ + 1))
    out=$OUT/run-$(printf %03d $RUN_SEQ)-$wl-t$thr-r$rep-$path.txt
    LAST_OTHERS=0 LAST_OK=0 LAST_STATUS=skipped LAST_QPS=0 LAST_P95=0 LAST_ERRS=0 LAST_RECON=0 LAST_CONNS=- LAST_NSAMPLES=0 LAST_OUT=$out
    if [[ $path != direct ]] && ! kill -0 "${PID[$path]}" 2>/dev/null; then
        log "${LABEL[$path]} is not running: skipping"
        LAST_STATUS=proxy-dead
        [[ $rep == warmup ]] || echo "$STAMP,$PS_MODE,$rep,$wl,$thr,$order,$path,proxy-dead,$secs,0,0,0,0,0,0,0,0,0,0,0,0,-,-,0,0,0,1" >>"$CSV"
        return
    fi
    local p0 m0 o0 c0 mt0 st0 t0 p1 m1 o1 c1 mt1 st1 t1 rc
    proc_ticks "${PID[$path]}"; p0=$TICKS; proc_ticks "$MDB_PID"; m0=$TICKS; ours_ticks; o0=$TICKS
    machine_ticks; mt0=$BUSY st0=$STEAL
    t0=${EPOCHREALTIME/./}
    children_ticks; c0=$CTICKS
    timeout --foreground -k 10 $((secs + 60 + thr / 10)) \
        sysbench "$wl" "${SB_COMMON[@]}" "${PS_ARGS[@]}" --mysql-user="${SB_USER[$path]}" --mysql-port="$port" \
        --threads="$thr" --time="$secs" --events=0 --percentile=95 --histogram=off "$@" run \
        >"$out" 2>&1
    rc=$?
    children_ticks; c1=$CTICKS
    t1=${EPOCHREALTIME/./}
    machine_ticks; mt1=$BUSY st1=$STEAL
    proc_ticks "${PID[$path]}"; p1=$TICKS; proc_ticks "$MDB_PID"; m1=$TICKS; ours_ticks; o1=$TICKS
    # Let the sampler write the last period's sample, then read the samples.
    read -r -t "$SAMPLE_S" -u 9 _
    conns_max "$path" "$(us_to_s "$t0")" "$(us_to_s "$t1")"

    parse_sysbench "$out"
    local queries=$SB_QUERIES qps=$SB_QPS tps=$SB_TPS p95=$SB_P95 errs=$SB_ERRS recon=$SB_RECON status
    # Ignored errors (deadlocks of oltp_read_write: 1213, 1020, 1205 by
    # default) are counted in the errors column but do not fail a run;
    # reconnects, FATAL and a non-zero exit do.
    status=$(run_status "$rc")
    if [[ $status == ok ]] && ((${recon:-0} > 0)); then status=reconnects; fi
    if [[ $status == ok ]] && grep -q -E 'FATAL|ALERT' "$out"; then status=errors-logged; fi
    if [[ $path != direct ]] && ! kill -0 "${PID[$path]}" 2>/dev/null; then status="$status+proxy-died"; fi

    local proxy=$((p1 - p0)) row
    [[ $path == direct ]] && proxy=0 # there p0/p1 are mariadbd's own ticks
    row=$(cpu_row $((t1 - t0)) "${queries:-0}" "$proxy" $((m1 - m0)) $((o1 - o0)) $((c1 - c0)) $((mt1 - mt0)) $((st1 - st0)))
    local wall proxy_s p1k m_s m1k c_s others steal
    IFS=, read -r wall proxy_s p1k m_s m1k c_s others steal <<<"$row"
    LAST_OTHERS=${others%.*} LAST_STATUS=$status LAST_QPS=${qps:-0} LAST_P95=${p95:-0}
    LAST_ERRS=${errs:-0} LAST_RECON=${recon:-0} LAST_CONNS=$CONNS LAST_NSAMPLES=$NSAMPLES
    [[ $status == ok ]] && LAST_OK=1
    if [[ $rep != warmup ]]; then
        echo "$STAMP,$PS_MODE,$rep,$wl,$thr,$order,$path,$status,$secs,$wall,${queries:-0},${qps:-0},${tps:-0},${p95:-0},${errs:-0},${recon:-0},$proxy_s,$p1k,$m_s,$m1k,$c_s,$CONNS,$CONNS_ALL,$NSAMPLES,$others,$steal,1" >>"$CSV"
    fi
    printf '  %-8s %-18s t=%-4s rep=%-7s qps=%-10s p95=%-7s proxy_cpu/1kq=%-9s conns=%-5s errs=%-4s others=%s%% %s\n' \
        "$path" "$wl" "$thr" "$rep" "${qps:-?}" "${p95:-?}" "$p1k" "$CONNS" "${errs:-?}" "$others" "$status" >&2
    if ((NSAMPLES == 0)); then
        log "WARNING: no connection samples during this run (see $TMP/sampler.err)"
        tail -3 "$TMP/sampler.err" >&2
    fi
    if [[ $status != ok ]]; then
        local dbr_log=""
        [[ $path == session || $path == txn ]] && dbr_log=$TMP/dbrouter-$path.log
        show_failed_run "$path" "$wl" "$thr" "$status" "$out" "$dbr_log"
    fi
}
# A FIFO nobody writes to, for sleeping with `read -t` without forking.
exec 9<>"$TMP/tick.fifo"

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per workload and path at 16 threads"
    for wl in $WORKLOADS; do
        for path in "${PATHS[@]}"; do run_one "$path" "$wl" 16 "$WARMUP" warmup 0; done
    done
fi

run_reps quadruplet

# ---------------------------------------------------------------- 2,000 clients
CLIENTS_LINE=""
CLIENTS_VERDICT=""
if ((CLIENTS > 0)); then
    over_limit && die "time limit of $LIMIT s exceeded"
    log "$CLIENTS clients: oltp_point_select --threads=$CLIENTS for ${CLIENTS_TIME}s through dbrouter in transaction mode (max_per_shard $POOL_MAX)"
    ((QUIET_WAIT > 0)) && wait_quiet
    ign=()
    [[ -n $CLIENTS_IGNORE ]] && ign=(--mysql-ignore-errors="$CLIENTS_IGNORE")
    run_one txn oltp_point_select "$CLIENTS" "$CLIENTS_TIME" clients 1 "${ign[@]}"
    rss=$(awk '/^VmHWM:/{print $2 " " $3}' "/proc/$DBT_PID/status" 2>/dev/null)
    if [[ $LAST_CONNS == - || $LAST_NSAMPLES == 0 ]]; then
        CLIENTS_VERDICT="UNKNOWN (no connection samples)"
    elif ((LAST_CONNS <= POOL_MAX)); then
        CLIENTS_VERDICT="PASS ($LAST_CONNS <= $POOL_MAX)"
    else
        CLIENTS_VERDICT="FAIL ($LAST_CONNS > $POOL_MAX)"
    fi
    CLIENTS_LINE="| oltp_point_select | $CLIENTS | dbrouter transaction (max_per_shard $POOL_MAX) | $(printf '%.0f' "$LAST_QPS") | $LAST_P95 | $LAST_ERRS | $LAST_RECON | $LAST_STATUS | $LAST_CONNS ($LAST_NSAMPLES samples) | $CLIENTS_VERDICT | ${rss:--} | $LAST_OTHERS |"
    grep -q 'Threads started' "$LAST_OUT" || log "WARNING: sysbench did not start all its threads (no 'Threads started!')"
fi

# ---------------------------------------------------------------- summary
SUMMARY=$OUT/summary.md
{
    awk -F, -v ps="$PS_MODE" -v poolmax="$POOL_MAX" "$AWK_STATS"'
NR == 1 { next }
$27 != 1 || $3 == "clients" { next }
{
    k = $4 SUBSEP $5; kp = k SUBSEP $7
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    runs[kp]++
    if ($22 != "-" && $22 + 0 > cmax[kp] + 0) cmax[kp] = $22
    if ($22 != "-") hasc[kp] = 1
    if ($25 + 0 > omax[kp] + 0) omax[kp] = $25
    errs[kp] += $15
    if ($8 != "ok") { bad[kp]++; next }
    add(qps, kp, $12); add(p95, kp, $14); add(cpu, kp, $18); add(mcpu, kp, $20)
    rq[k, $3, $7] = $12
    if (!((k, $3) in reps)) { reps[k, $3] = 1; rl[k] = rl[k] " " $3 }
}
END {
    np = split("direct haproxy session txn", P, " ")
    L["direct"] = "direct"; L["haproxy"] = "haproxy"; L["session"] = "dbrouter session"; L["txn"] = "dbrouter transaction"
    printf "| workload (%s) | threads | path | QPS | p95 ms | vs direct | vs haproxy | proxy CPU s/1kq | mariadbd CPU s/1kq | backend conns max | ignored errors | reps | max others %% |\n", ps
    print "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, kk, SUBSEP)
        n = split(rl[k], rr, " ")
        for (pi = 1; pi <= np; pi++) {
            p = P[pi]; kp = k SUBSEP p
            if (!(kp in runs)) continue
            rd = ""; rh = ""
            for (j = 1; j <= n; j++) {
                if ((k, rr[j], p) in rq && (k, rr[j], "direct") in rq && rq[k, rr[j], "direct"] > 0)
                    rd = rd " " rq[k, rr[j], p] / rq[k, rr[j], "direct"]
                if ((k, rr[j], p) in rq && (k, rr[j], "haproxy") in rq && rq[k, rr[j], "haproxy"] > 0)
                    rh = rh " " rq[k, rr[j], p] / rq[k, rr[j], "haproxy"]
            }
            c = hasc[kp] ? cmax[kp] : "-"
            if (p == "txn" && hasc[kp] && cmax[kp] + 0 > poolmax + 0) c = c " (ABOVE " poolmax ")"
            nok = split(qps[kp], tmp, " ")
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d%s | %s |\n", kk[1], kk[2], L[p],
                fmt(median(qps[kp]), "%.0f"), fmt(median(p95[kp]), "%.2f"),
                (p == "direct") ? "1" : fmt(median(rd), "%.2f"), (p == "haproxy") ? "1" : fmt(median(rh), "%.2f"),
                (p == "direct") ? "-" : fmt(median(cpu[kp]), "%.4f"), fmt(median(mcpu[kp]), "%.4f"),
                c, errs[kp], nok, (bad[kp] ? " (" bad[kp] " failed)" : ""), omax[kp] + 0
        }
    }
}' "$CSV"
    if [[ -n $CLIENTS_LINE ]]; then
        echo
        echo "| workload | clients | path | QPS | p95 ms | ignored errors | reconnects | status | backend conns max | bound | dbrouter peak RSS | others % |"
        echo "|---|--:|---|--:|--:|--:|--:|---|--:|---|--:|--:|"
        echo "$CLIENTS_LINE"
    fi
} >"$SUMMARY"

echo
echo "sysbench via direct / haproxy (mode tcp, nbthread 2) / dbrouter session mode / dbrouter transaction mode" \
    "(max_per_shard $POOL_MAX), --reactors $REACTORS --pin-cores $PIN, TIME=${TIME}s, REPS=$REPS, table_size=$TABLE_SIZE," \
    "ps-mode=$PS_MODE, $NCPU vCPU, $(date -u '+%F %H:%M') UTC, git $GIT_REV"
echo "medians over repetitions; ratios are medians of the per-repetition ratios; backend conns = largest count of the path's account in PROCESSLIST (sampled every ${SAMPLE_MS} ms) over all repetitions"
echo
cat "$SUMMARY"
echo
[[ -n $CLIENTS_VERDICT ]] && echo "$CLIENTS clients through dbrouter in transaction mode, at most $POOL_MAX backend connections: $CLIENTS_VERDICT"
failed=$(awk -F, 'NR > 1 && $27 == 1 && $8 != "ok"' "$CSV" | wc -l)
((failed > 0)) && log "WARNING: $failed runs failed; see status in $CSV and the run-*.txt files in $OUT"
for m in session txn; do
    errlines=$(grep -c -i -E 'error|panic|warn' "$TMP/dbrouter-$m.log" 2>/dev/null)
    ((${errlines:-0} > 0)) && log "dbrouter ($m) log has $errlines error/warn lines (copied to $OUT/dbrouter-$m.log)"
done
log "raw numbers: $CSV; sysbench outputs, samples and logs: $OUT; took $(($(date +%s) - START_EPOCH)) s"
