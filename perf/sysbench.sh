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
#   RESULTS_DIR [perf/results]
#   WARMUP [5]         seconds of warm-up per workload and path (0 = none)
#   OTHERS_MAX [15]    % of the machine used by other processes above which a
#                      triplet is rerun (once; RETRIES to change, 0 = never)
#   RETRIES [1]
#   QUIET_WAIT [60]    before each triplet, wait up to this many seconds for
#                      other processes to fall below OTHERS_MAX (0 = never)
#   DBROUTER_BIN [target/release/dbrouter]; built with cargo when missing or
#                      older than the sources unless BUILD=0
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
TIME=${TIME:-20}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 16 64"}
WORKLOADS=${WORKLOADS:-"oltp_point_select oltp_read_only"}
TABLE_SIZE=${TABLE_SIZE:-100000}
PS_MODE=${PS_MODE:-default}
REACTORS=${REACTORS:-2}
PIN=${PIN:-true}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/perf/results}
WARMUP=${WARMUP:-5}
OTHERS_MAX=${OTHERS_MAX:-15}
RETRIES=${RETRIES:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
BUILD=${BUILD:-1}
DBROUTER_BIN=${DBROUTER_BIN:-$ROOT/target/release/dbrouter}
export RUST_LOG=${RUST_LOG:-info}

PATHS=(direct haproxy dbrouter)
SB_USER=sbtest
SB_PASS=sbtest_pw
ADMIN_USER=dbrouter_admin
ADMIN_PASS=dbrouter_admin_pw
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
START_EPOCH=$(date +%s)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for n in TIME REPS TABLE_SIZE REACTORS WARMUP OTHERS_MAX RETRIES QUIET_WAIT; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a non-negative integer (got '${!n}')"
done
((TIME > 0 && REPS > 0)) || die "TIME and REPS must be at least 1"
for t in $THREADS; do [[ $t =~ ^[1-9][0-9]*$ ]] || die "bad thread count '$t'"; done
case $PS_MODE in
    disable) PS_ARGS=(--db-ps-mode=disable) ;;
    default | auto | "") PS_MODE=default; PS_ARGS=() ;;
    *) die "PS_MODE must be 'default' or 'disable'" ;;
esac
for cmd in mariadbd mariadb-install-db mariadb haproxy sysbench ss timeout; do
    command -v "$cmd" >/dev/null || die "$cmd not found"
done

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/dbrouter-sysbench.XXXXXX) || die "mktemp failed"
OUT=$RESULTS_DIR/sysbench-$STAMP
CSV=$RESULTS_DIR/sysbench-$STAMP.csv
mkdir -p "$OUT" || die "cannot create $OUT"
MDB_PID="" HAP_PID="" DBR_PID=""
SHARD_PIDS=()

stop_pid() { # pid name seconds: SIGTERM, wait up to N s, then SIGKILL
    local pid=$1 name=$2 secs=$3 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) still running after ${secs}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    trap - EXIT INT TERM
    stop_pid "$DBR_PID" dbrouter 10
    stop_pid "$HAP_PID" haproxy 10
    stop_pid "$MDB_PID" mariadbd 60
    local shard_pid
    for shard_pid in "${SHARD_PIDS[@]}"; do stop_pid "$shard_pid" mariadbd 60; done
    [[ -f $TMP/dbrouter.log ]] && cp "$TMP/dbrouter.log" "$OUT/" 2>/dev/null
    [[ -f $TMP/mariadbd.err ]] && cp "$TMP/mariadbd.err" "$OUT/" 2>/dev/null
    [[ -f $TMP/haproxy.log ]] && cp "$TMP/haproxy.log" "$OUT/" 2>/dev/null
    [[ -f $TMP/haproxy.cfg ]] && cp "$TMP/haproxy.cfg" "$OUT/" 2>/dev/null
    rm -rf "$TMP"
    log "stopped everything; logs in $OUT"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------- estimate
n_threads=$(wc -w <<<"$THREADS")
n_work=$(wc -w <<<"$WORKLOADS")
n_runs=$((n_work * n_threads * REPS * 3))
# ~4 s per run for connecting and parsing, ~60 s setup (install, prepare).
EST=$((n_runs * (TIME + 4) + n_work * 3 * (WARMUP + 3) + 60))
# Hard limit: everything, every allowed rerun and then some.
LIMIT=$((EST * (1 + RETRIES) + n_runs / 3 * (1 + RETRIES) * QUIET_WAIT + 300))
log "plan: $n_work workloads x $n_threads thread counts x $REPS reps x 3 paths = $n_runs runs of ${TIME}s, ps-mode=$PS_MODE"
log "estimated total time: ~$((EST / 60)) min $((EST % 60)) s on a quiet machine (hard limit $((LIMIT / 60)) min with waits and reruns)"
over_limit() { (($(date +%s) - START_EPOCH > LIMIT)); }

# ---------------------------------------------------------------- build
if ((BUILD)); then
    newest_src=$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$DBROUTER_BIN" -print -quit 2>/dev/null)
    if [[ ! -x $DBROUTER_BIN || -n $newest_src ]]; then
        log "building dbrouter (cargo build --release)"
        if ! (cd "$ROOT" && timeout 1800 cargo build --release) >"$OUT/build.log" 2>&1; then
            tail -20 "$OUT/build.log" >&2
            [[ -x $DBROUTER_BIN ]] || die "build failed and no binary at $DBROUTER_BIN"
            log "WARNING: build failed; using the existing (older) $DBROUTER_BIN"
        fi
    fi
fi
[[ -x $DBROUTER_BIN ]] || die "no dbrouter binary at $DBROUTER_BIN"

# ---------------------------------------------------------------- ports
declare -A TAKEN=()
free_port() { # sets PORT_FOUND to a port nobody uses (bounded search)
    local i p
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [[ -n ${TAKEN[$p]:-} ]] && continue
        if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then
            TAKEN[$p]=1
            PORT_FOUND=$p
            return 0
        fi
    done
    return 1
}
free_port && MDB_PORT=$PORT_FOUND || die "no free port"
free_port && HAP_PORT=$PORT_FOUND || die "no free port"
free_port && DBR_PORT=$PORT_FOUND || die "no free port"
declare -A PORT=([direct]=$MDB_PORT [haproxy]=$HAP_PORT [dbrouter]=$DBR_PORT)

wait_sql() { # port user password seconds: wait until SELECT 1 works
    local port=$1 user=$2 pass=$3 secs=$4 i
    for ((i = 0; i < secs * 4; i++)); do
        if mariadb --no-defaults -h127.0.0.1 -P"$port" -u"$user" -p"$pass" \
            --connect-timeout=2 -N -e 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

# ---------------------------------------------------------------- mariadbd
log "mariadbd: installing a data directory in $TMP/data"
mariadb-install-db --no-defaults --datadir="$TMP/data" --auth-root-authentication-method=normal \
    >"$TMP/install.log" 2>&1 || { tail -20 "$TMP/install.log" >&2; die "mariadb-install-db failed"; }
mariadbd --no-defaults --datadir="$TMP/data" --port="$MDB_PORT" --bind-address=127.0.0.1 \
    --socket="$TMP/sock" --pid-file="$TMP/mariadbd.pid" --user=root \
    --log-error="$TMP/mariadbd.err" \
    --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M \
    --performance-schema=OFF --skip-name-resolve --max-connections=500 &
MDB_PID=$!
root_sql() { mariadb --no-defaults -S "$TMP/sock" -uroot -N "$@"; }
for ((i = 0; i < 120; i++)); do
    root_sql -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$MDB_PID" 2>/dev/null || { tail -20 "$TMP/mariadbd.err" >&2; die "mariadbd exited"; }
    sleep 0.25
done
root_sql -e 'SELECT 1' >/dev/null 2>&1 || die "mariadbd not ready after 30 s"
log "mariadbd $(root_sql -e 'SELECT VERSION()') on 127.0.0.1:$MDB_PORT (pid $MDB_PID)"

# Drop anonymous users (they would shadow 'sbtest'@'127.0.0.1' lookups).
anon=$(root_sql -e "SELECT CONCAT('DROP USER ''''@''', Host, ''';') FROM mysql.global_priv WHERE User=''") || die "cannot list users"
[[ -n $anon ]] && { root_sql -e "$anon" || die "cannot drop anonymous users"; }
root_sql <<SQL || die "cannot create users"
CREATE DATABASE sbtest;
CREATE USER '$SB_USER'@'127.0.0.1' IDENTIFIED BY '$SB_PASS';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON sbtest.* TO '$SB_USER'@'127.0.0.1';
CREATE USER '$ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PASS';
GRANT SELECT ON mysql.* TO '$ADMIN_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

SB_COMMON=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-user="$SB_USER"
    --mysql-password="$SB_PASS" --mysql-db=sbtest --tables=1 --table-size="$TABLE_SIZE")
log "sysbench prepare: 1 table, $TABLE_SIZE rows"
timeout 600 sysbench oltp_read_only "${SB_COMMON[@]}" --mysql-port="$MDB_PORT" prepare \
    >"$OUT/prepare.log" 2>&1 || { tail -20 "$OUT/prepare.log" >&2; die "sysbench prepare failed"; }

# ---------------------------------------------------------------- shards
SHARDS=${SHARDS:-1}
SHARD_PORTS=()
SHARD_PIDS=()
SB_EXTRA=()
if ((SHARDS > 1)); then
    SB_EXTRA=(--skip_trx=on --range_selects=off)
    BUCKETS=1024
    for ((i = 0; i < SHARDS; i++)); do
        free_port; port=$PORT_FOUND
        dir="$TMP/shard$i"
        mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
            >"$dir.install.log" 2>&1 || die "mariadb-install-db failed for shard $i"
        mariadbd --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
            --socket="$dir/sock" --pid-file="$dir/mariadbd.pid" --user=root \
            --log-error="$dir/mariadbd.err" \
            --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=128M \
            --performance-schema=OFF --skip-name-resolve --max-connections=500 &
        SHARD_PIDS+=($!)
        SHARD_PORTS+=("$port")
        shard_sql() { mariadb --no-defaults -S "$dir/sock" -uroot -N "$@"; }
        for ((t = 0; t < 120; t++)); do
            shard_sql -e 'SELECT 1' >/dev/null 2>&1 && break
            sleep 0.25
        done
        anon=$(shard_sql -e "SELECT CONCAT('DROP USER ''''@''', Host, ''';') FROM mysql.global_priv WHERE User=''")
        [[ -n $anon ]] && shard_sql -e "$anon"
        shard_sql <<SQL || die "cannot create users on shard $i"
CREATE DATABASE sbtest;
CREATE USER '$SB_USER'@'127.0.0.1' IDENTIFIED BY '$SB_PASS';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON sbtest.* TO '$SB_USER'@'127.0.0.1';
CREATE USER '$ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PASS';
GRANT SELECT ON mysql.* TO '$ADMIN_USER'@'127.0.0.1';
SQL
        # The same rows as the unsharded server, then keep this shard's
        # buckets only: CRC32 of the key's decimal text modulo the bucket
        # count, equal contiguous ranges (README, "Which shard a key goes to").
        timeout 600 sysbench oltp_read_only "${SB_COMMON[@]}" --mysql-port="$port" prepare \
            >"$OUT/prepare-shard$i.log" 2>&1 || die "sysbench prepare failed on shard $i"
        lo=$((i * BUCKETS / SHARDS)); hi=$(((i + 1) * BUCKETS / SHARDS - 1))
        shard_sql -e "DELETE FROM sbtest.sbtest1 WHERE CRC32(id) % $BUCKETS NOT BETWEEN $lo AND $hi"
        log "shard $i on 127.0.0.1:$port (pid ${SHARD_PIDS[-1]}): buckets $lo-$hi, $(shard_sql -e 'SELECT COUNT(*) FROM sbtest.sbtest1') rows"
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
cat >"$TMP/haproxy.cfg" <<CFG
global
    nbthread 2
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen mysql
    bind 127.0.0.1:$HAP_PORT
    server db 127.0.0.1:$MDB_PORT
CFG
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAP_PID=$!

# ---------------------------------------------------------------- dbrouter
if ((SHARDS > 1)); then
    "$DBROUTER_BIN" --config "$TMP/dbrouter.toml" --pin-cores "$PIN" >"$TMP/dbrouter.log" 2>&1 &
else
    DBROUTER_ADMIN_USER=$ADMIN_USER DBROUTER_ADMIN_PASSWORD=$ADMIN_PASS \
        "$DBROUTER_BIN" --listen "127.0.0.1:$DBR_PORT" --backend "127.0.0.1:$MDB_PORT" \
        --reactors "$REACTORS" --pin-cores "$PIN" >"$TMP/dbrouter.log" 2>&1 &
fi
DBR_PID=$!

wait_sql "$HAP_PORT" "$SB_USER" "$SB_PASS" 20 || { cat "$TMP/haproxy.log" >&2; die "haproxy not answering on $HAP_PORT"; }
if ! wait_sql "$DBR_PORT" "$SB_USER" "$SB_PASS" 30; then
    tail -30 "$TMP/dbrouter.log" >&2
    die "dbrouter not answering on $DBR_PORT"
fi
declare -A PID=([direct]=$MDB_PID [haproxy]=$HAP_PID [dbrouter]=$DBR_PID)
log "haproxy on $HAP_PORT (pid $HAP_PID), dbrouter on $DBR_PORT (pid $DBR_PID, $REACTORS reactors, $(basename "$DBROUTER_BIN") built $(date -r "$DBROUTER_BIN" '+%F %T'))"
GIT_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo "+dirty-src")
{
    echo "date_utc=$STAMP git=$GIT_REV ncpu=$NCPU kernel=$(uname -r)"
    echo "TIME=$TIME REPS=$REPS THREADS='$THREADS' WORKLOADS='$WORKLOADS' TABLE_SIZE=$TABLE_SIZE PS_MODE=$PS_MODE REACTORS=$REACTORS PIN=$PIN SHARDS=$SHARDS sysbench_extra='${SB_EXTRA[*]}'"
    echo "mariadbd=$(root_sql -e 'SELECT VERSION()') haproxy=$(haproxy -v | awk 'NR==1{print $3}') sysbench=$(sysbench --version | awk '{print $2}')"
} >"$OUT/meta.txt"

# ---------------------------------------------------------------- measuring
# The readers below use builtins only and set globals (no fork), so nothing
# is added to this shell's children's CPU time between two readings.
# CPU ticks (utime+stime) of a process -> TICKS.
proc_ticks() {
    local s
    TICKS=0
    read -r s <"/proc/$1/stat" 2>/dev/null || return 0
    s=${s##*) }
    local -a f=($s)
    TICKS=$((f[11] + f[12]))
}
# CPU ticks of every database server (the unsharded one and the shards)
# -> TICKS: with shards, the dbrouter path's server CPU is theirs.
servers_ticks() {
    local sum=0 p
    for p in "$MDB_PID" "${SHARD_PIDS[@]}"; do
        proc_ticks "$p"; sum=$((sum + TICKS))
    done
    TICKS=$sum
}
# This shell's waited-for children's CPU (cutime+cstime) -> CTICKS: sysbench's
# CPU (and timeout's, which is negligible).
children_ticks() {
    local s
    read -r s <"/proc/$$/stat"
    s=${s##*) }
    local -a f=($s)
    CTICKS=$((f[13] + f[14]))
}
# Machine busy ticks (all CPUs, without steal) -> BUSY, steal ticks -> STEAL.
machine_ticks() {
    local cpu user nice sys idle iow irq sirq steal rest
    read -r cpu user nice sys idle iow irq sirq steal rest </proc/stat
    BUSY=$((user + nice + sys + irq + sirq)) STEAL=$steal
}

echo "stamp,ps_mode,rep,workload,threads,order,path,status,time_s,wall_s,queries,qps,tps,p95_ms,errors,reconnects,proxy_cpu_s,proxy_cpu_s_per_1kq,mariadbd_cpu_s,mariadbd_cpu_s_per_1kq,sysbench_cpu_s,others_cpu_pct,steal_pct,valid" >"$CSV"

RUN_SEQ=0
# run_one path workload threads seconds rep order: one sysbench run; appends a
# CSV row unless rep is "warmup"; sets LAST_OTHERS (percent) and LAST_OK.
run_one() {
    local path=$1 wl=$2 thr=$3 secs=$4 rep=$5 order=$6
    local port=${PORT[$path]} out
    RUN_SEQ=$((RUN_SEQ + 1))
    out=$OUT/run-$(printf %03d $RUN_SEQ)-$wl-t$thr-r$rep-$path.txt
    LAST_OTHERS=0 LAST_OK=0
    if [[ $path == dbrouter ]] && ! kill -0 "$DBR_PID" 2>/dev/null; then
        log "dbrouter is not running: skipping"
        [[ $rep == warmup ]] || echo "$STAMP,$PS_MODE,$rep,$wl,$thr,$order,$path,dbrouter-dead,$secs,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0" >>"$CSV"
        return
    fi
    local h0 d0 m0 c0 mt0 st0 t0 h1 d1 m1 c1 mt1 st1 t1 rc
    proc_ticks "$HAP_PID"; h0=$TICKS; proc_ticks "$DBR_PID"; d0=$TICKS; servers_ticks; m0=$TICKS
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
    proc_ticks "$HAP_PID"; h1=$TICKS; proc_ticks "$DBR_PID"; d1=$TICKS; servers_ticks; m1=$TICKS

    local queries qps tps p95 errs recon status
    queries=$(awk '/^ *queries:/{print $2; exit}' "$out")
    qps=$(awk '/^ *queries:/{gsub(/\(/,"",$3); print $3; exit}' "$out")
    tps=$(awk '/^ *transactions:/{gsub(/\(/,"",$3); print $3; exit}' "$out")
    p95=$(awk '/95th percentile:/{print $3; exit}' "$out")
    errs=$(awk '/^ *ignored errors:/{print $3; exit}' "$out")
    recon=$(awk '/^ *reconnects:/{print $2; exit}' "$out")
    status=ok
    if ((rc == 124 || rc == 137)); then status=timeout
    elif ((rc != 0)); then status=exit$rc
    elif [[ -z $queries || -z $qps ]]; then status=unparsed
    elif ((${errs:-0} > 0 || ${recon:-0} > 0)); then status=errors
    fi
    if [[ $status == ok ]] && grep -q -E 'FATAL|ALERT|WARNING' "$out"; then status=errors-logged; fi
    # Dead proxy after the run?
    if [[ $path != direct ]] && ! kill -0 "${PID[$path]}" 2>/dev/null; then status="$status+proxy-died"; fi

    local wall_us=$((t1 - t0))
    local row
    row=$(awk -v hz="$HZ" -v ncpu="$NCPU" -v wall_us="$wall_us" -v q="${queries:-0}" \
        -v h=$((h1 - h0)) -v d=$((d1 - d0)) -v m=$((m1 - m0)) -v c=$((c1 - c0)) \
        -v mt=$((mt1 - mt0)) -v st=$((st1 - st0)) -v path="$path" 'BEGIN {
            wall = wall_us / 1e6
            proxy = (path == "haproxy") ? h : (path == "dbrouter") ? d : 0
            others = mt - h - d - m - c; if (others < 0) others = 0
            cap = wall * ncpu * hz
            p1k = (q > 0 && path != "direct") ? proxy / hz / q * 1000 : 0
            m1k = (q > 0) ? m / hz / q * 1000 : 0
            printf "%.3f,%.2f,%.6f,%.2f,%.6f,%.2f,%.1f,%.1f", wall, proxy / hz, p1k, m / hz, m1k, c / hz,
                (cap > 0 ? 100 * others / cap : 0), (cap > 0 ? 100 * st / cap : 0)
        }')
    local wall proxy_s p1k m_s m1k c_s others steal
    IFS=, read -r wall proxy_s p1k m_s m1k c_s others steal <<<"$row"
    LAST_OTHERS=${others%.*}
    [[ $status == ok ]] && LAST_OK=1
    if [[ $rep != warmup ]]; then
        echo "$STAMP,$PS_MODE,$rep,$wl,$thr,$order,$path,$status,$secs,$wall,${queries:-0},${qps:-0},${tps:-0},${p95:-0},${errs:-0},${recon:-0},$proxy_s,$p1k,$m_s,$m1k,$c_s,$others,$steal,1" >>"$CSV"
    fi
    printf '  %-9s %-18s t=%-3s rep=%-6s qps=%-10s p95=%-7s proxy_cpu/1kq=%-9s others=%s%% steal=%s%% %s\n' \
        "$path" "$wl" "$thr" "$rep" "${qps:-?}" "${p95:-?}" "$p1k" "$others" "$steal" "$status" >&2
    if [[ $status != ok ]]; then
        log "run $path $wl t=$thr failed ($status); sysbench output ($out):"
        tail -25 "$out" >&2
        if [[ $path == dbrouter ]]; then
            log "dbrouter log tail ($TMP/dbrouter.log, copied to $OUT at exit):"
            tail -25 "$TMP/dbrouter.log" >&2
        fi
    fi
}

# wait_quiet: up to QUIET_WAIT s until processes other than ours use at most
# OTHERS_MAX % of the machine (sampled over 2 s). Sets QUIET_PCT.
wait_quiet() {
    local waited=0 b0 o0 b1 o1 t0 t1
    while :; do
        machine_ticks; b0=$BUSY
        proc_ticks "$HAP_PID"; o0=$TICKS; proc_ticks "$DBR_PID"; o0=$((o0 + TICKS)); proc_ticks "$MDB_PID"; o0=$((o0 + TICKS))
        t0=${EPOCHREALTIME/./}
        sleep 2
        t1=${EPOCHREALTIME/./}
        machine_ticks; b1=$BUSY
        proc_ticks "$HAP_PID"; o1=$TICKS; proc_ticks "$DBR_PID"; o1=$((o1 + TICKS)); proc_ticks "$MDB_PID"; o1=$((o1 + TICKS))
        QUIET_PCT=$(((b1 - b0 - (o1 - o0)) * 100 * 1000000 / ((t1 - t0) * NCPU * HZ)))
        ((QUIET_PCT <= OTHERS_MAX)) && return 0
        if ((waited >= QUIET_WAIT)); then
            log "other processes still use ${QUIET_PCT}% of the machine after ${waited}s: going on"
            return 0
        fi
        ((waited == 0)) && log "other processes use ${QUIET_PCT}% of the machine: waiting up to ${QUIET_WAIT}s"
        waited=$((waited + 2))
    done
}

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per workload and path"
    for wl in $WORKLOADS; do
        for path in "${PATHS[@]}"; do run_one "$path" "$wl" 16 "$WARMUP" warmup 0; done
    done
fi

retries_left=$((RETRIES * n_work * n_threads * REPS))
for ((rep = 1; rep <= REPS; rep++)); do
    for wl in $WORKLOADS; do
        for thr in $THREADS; do
            attempt=0
            while :; do
                over_limit && die "time limit of $LIMIT s exceeded"
                log "rep $rep/$REPS $wl threads=$thr$( ((attempt)) && echo " (attempt $((attempt + 1)))")"
                ((QUIET_WAIT > 0)) && wait_quiet
                first_line=$(($(wc -l <"$CSV") + 1))
                high=0
                for ((k = 0; k < 3; k++)); do
                    path=${PATHS[$(((k + rep - 1) % 3))]}
                    run_one "$path" "$wl" "$thr" "$TIME" "$rep" "$((k + 1))"
                    ((LAST_OTHERS > OTHERS_MAX)) && high=1
                done
                if ((high && attempt < RETRIES && retries_left > 0)); then
                    log "other processes used more than $OTHERS_MAX% of the machine: rerunning this triplet"
                    # Mark the rows just written as not valid (last column 0).
                    sed -i "${first_line},\$ s/,1\$/,0/" "$CSV"
                    attempt=$((attempt + 1)); retries_left=$((retries_left - 1))
                    continue
                fi
                break
            done
        done
    done
done

# ---------------------------------------------------------------- summary
SUMMARY=$OUT/summary.md
awk -F, -v ps="$PS_MODE" '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(arr, key, v) { arr[key] = (key in arr) ? arr[key] " " v : v }
NR == 1 { next }
$24 != 1 { next }
{
    k = $4 SUBSEP $5
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    if ($8 != "ok") { bad[k]++; next }
    add(qps, k SUBSEP $7, $12); add(p95, k SUBSEP $7, $14)
    if ($7 != "direct") add(cpu, k SUBSEP $7, $18)
    add(mcpu, k SUBSEP $7, $20)
    r = k SUBSEP $3; rq[r SUBSEP $7] = $12
    if (!((k, $3) in reps)) { reps[k, $3] = 1; rl[k] = rl[k] " " $3 }
    if ($22 + 0 > omax[k] + 0) omax[k] = $22
}
END {
    printf "| workload (%s) | threads | QPS direct | QPS haproxy | QPS dbrouter | p95 ms direct | p95 haproxy | p95 dbrouter | dbrouter/direct | dbrouter/haproxy | CPU s/1kq haproxy | CPU s/1kq dbrouter | mariadbd CPU s/1kq direct/haproxy/dbrouter | reps | max others %% |\n", ps
    print "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
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
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d%s | %s |\n", kk[1], kk[2],
            fmt(median(qps[k, "direct"]), "%.0f"), fmt(median(qps[k, "haproxy"]), "%.0f"), fmt(median(qps[k, "dbrouter"]), "%.0f"),
            fmt(median(p95[k, "direct"]), "%.2f"), fmt(median(p95[k, "haproxy"]), "%.2f"), fmt(median(p95[k, "dbrouter"]), "%.2f"),
            fmt(median(rd), "%.2f"), fmt(median(rh), "%.2f"),
            fmt(median(cpu[k, "haproxy"]), "%.4f"), fmt(median(cpu[k, "dbrouter"]), "%.4f"),
            fmt(median(mcpu[k, "direct"]), "%.4f") "/" fmt(median(mcpu[k, "haproxy"]), "%.4f") "/" fmt(median(mcpu[k, "dbrouter"]), "%.4f"),
            n, (bad[k] ? " (" bad[k] " failed)" : ""), omax[k] + 0
    }
}
function fmt(v, f) { return (v == "") ? "-" : sprintf(f, v) }
' "$CSV" >"$SUMMARY"

echo
echo "sysbench via direct / haproxy (mode tcp, nbthread 2) / dbrouter (--reactors $REACTORS --pin-cores $PIN)," \
    "TIME=${TIME}s, REPS=$REPS, table_size=$TABLE_SIZE, ps-mode=$PS_MODE, $NCPU vCPU, $(date -u '+%F %H:%M') UTC, git $GIT_REV"
echo "medians over repetitions; ratios are medians of the per-repetition ratios"
echo
cat "$SUMMARY"
echo
failed=$(awk -F, 'NR > 1 && $24 == 1 && $8 != "ok"' "$CSV" | wc -l)
((failed > 0)) && log "WARNING: $failed runs failed; see status in $CSV and the run-*.txt files in $OUT"
errlines=$(grep -c -i -E 'error|panic|warn' "$TMP/dbrouter.log" 2>/dev/null)
((${errlines:-0} > 0)) && log "dbrouter log has $errlines error/warn lines (copied to $OUT/dbrouter.log)"
log "raw numbers: $CSV; sysbench outputs and logs: $OUT; took $(($(date +%s) - START_EPOCH)) s"
