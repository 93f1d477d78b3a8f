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

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for n in TIME REPS TABLE_SIZE REACTORS POOL_MAX POOL_WAIT_MS CLIENTS CLIENTS_TIME SAMPLE_MS \
    MAX_CONNECTIONS WARMUP OTHERS_MAX RETRIES QUIET_WAIT; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a non-negative integer (got '${!n}')"
done
((TIME > 0 && REPS > 0 && SAMPLE_MS > 0)) || die "TIME, REPS and SAMPLE_MS must be at least 1"
((POOL_MAX >= REACTORS)) || die "POOL_MAX ($POOL_MAX) must be at least REACTORS ($REACTORS)"
max_thr=$CLIENTS
for t in $THREADS; do
    [[ $t =~ ^[1-9][0-9]*$ ]] || die "bad thread count '$t'"
    ((t > max_thr)) && max_thr=$t
done
((MAX_CONNECTIONS >= max_thr + 50)) || die "MAX_CONNECTIONS ($MAX_CONNECTIONS) must exceed the largest thread count ($max_thr) by 50"
case $PS_MODE in
    disable) PS_ARGS=(--db-ps-mode=disable) ;;
    default | auto | "") PS_MODE=default; PS_ARGS=() ;;
    *) die "PS_MODE must be 'default' or 'disable'" ;;
esac
for cmd in mariadbd mariadb-install-db mariadb haproxy sysbench ss timeout mkfifo; do
    command -v "$cmd" >/dev/null || die "$cmd not found"
done
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
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

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
over_limit() { (($(date +%s) - START_EPOCH > LIMIT)); }

# ---------------------------------------------------------------- build
if ((BUILD)); then
    newest_src=$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$DBROUTER_BIN" -print -quit 2>/dev/null)
    if [[ ! -x $DBROUTER_BIN || -n $newest_src ]]; then
        log "building dbrouter (cargo build --release${CARGO_TARGET_DIR:+, CARGO_TARGET_DIR=$CARGO_TARGET_DIR})"
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
free_port && DBS_PORT=$PORT_FOUND || die "no free port"
free_port && DBT_PORT=$PORT_FOUND || die "no free port"
declare -A PORT=([direct]=$MDB_PORT [haproxy]=$HAP_PORT [session]=$DBS_PORT [txn]=$DBT_PORT)

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
    --log-error="$TMP/mariadbd.err" --tmpdir="$TMP" \
    --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M \
    --performance-schema=OFF --skip-name-resolve --max-connections="$MAX_CONNECTIONS" &
MDB_PID=$!
root_sql() { mariadb --no-defaults -S "$TMP/sock" -uroot -N "$@"; }
for ((i = 0; i < 120; i++)); do
    root_sql -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$MDB_PID" 2>/dev/null || { tail -20 "$TMP/mariadbd.err" >&2; die "mariadbd exited"; }
    sleep 0.25
done
root_sql -e 'SELECT 1' >/dev/null 2>&1 || die "mariadbd not ready after 30 s"
log "mariadbd $(root_sql -e 'SELECT VERSION()') on 127.0.0.1:$MDB_PORT (pid $MDB_PID), max_connections $(root_sql -e 'SELECT @@max_connections'), open_files_limit $(root_sql -e 'SELECT @@open_files_limit')"

# Drop anonymous users (they would shadow 'user'@'127.0.0.1' lookups).
anon=$(root_sql -e "SELECT CONCAT('DROP USER ''''@''', Host, ''';') FROM mysql.global_priv WHERE User=''") || die "cannot list users"
[[ -n $anon ]] && { root_sql -e "$anon" || die "cannot drop anonymous users"; }
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
cat >"$TMP/haproxy.cfg" <<CFG
global
    nbthread 2
    maxconn $((max_thr * 2 + 100))
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen mysql
    bind 127.0.0.1:$HAP_PORT
    maxconn $((max_thr + 50))
    server db 127.0.0.1:$MDB_PORT
CFG
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAP_PID=$!

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
GIT_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo "+dirty-src")
{
    echo "date_utc=$STAMP git=$GIT_REV ncpu=$NCPU kernel=$(uname -r) dbrouter_bin=$DBROUTER_BIN built=$(date -r "$DBROUTER_BIN" '+%FT%T')"
    echo "TIME=$TIME REPS=$REPS THREADS='$THREADS' WORKLOADS='$WORKLOADS' TABLE_SIZE=$TABLE_SIZE PS_MODE=$PS_MODE REACTORS=$REACTORS PIN=$PIN POOL_MAX=$POOL_MAX POOL_WAIT_MS=$POOL_WAIT_MS CLIENTS=$CLIENTS CLIENTS_TIME=$CLIENTS_TIME CLIENTS_IGNORE=$CLIENTS_IGNORE SAMPLE_MS=$SAMPLE_MS MAX_CONNECTIONS=$MAX_CONNECTIONS nofile=$NOFILE"
    echo "mariadbd=$(root_sql -e 'SELECT VERSION()') haproxy=$(haproxy -v | awk 'NR==1{print $3}') sysbench=$(sysbench --version | awk '{print $2}')"
    echo "loadavg_at_start=$(cat /proc/loadavg)"
} >"$OUT/meta.txt"

# ---------------------------------------------------------------- measuring
# The readers below use builtins only and set globals (no fork), so nothing
# is added to this shell's children's CPU time between two readings.
proc_ticks() { # CPU ticks (utime+stime) of a process -> TICKS
    local s
    TICKS=0
    [[ -n $1 && -r /proc/$1/stat ]] || return 0
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 0
    s=${s##*) }
    local -a f=($s)
    TICKS=$((f[11] + f[12]))
}
ours_ticks() { # every long-running process of ours (servers, proxies, sampler) -> TICKS
    local sum=0 p
    for p in "$MDB_PID" "$HAP_PID" "$DBS_PID" "$DBT_PID" "$SAMPLER_PID" "$SAMPLER_LOOP_PID"; do
        proc_ticks "$p"; sum=$((sum + TICKS))
    done
    TICKS=$sum
}
children_ticks() { # this shell's waited-for children's CPU (sysbench) -> CTICKS
    local s
    read -r s <"/proc/$$/stat"
    s=${s##*) }
    local -a f=($s)
    CTICKS=$((f[13] + f[14]))
}
machine_ticks() { # machine busy ticks (no steal) -> BUSY, steal -> STEAL
    local cpu user nice sys idle iow irq sirq steal rest
    read -r cpu user nice sys idle iow irq sirq steal rest </proc/stat
    BUSY=$((user + nice + sys + irq + sirq)) STEAL=$steal
}
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

    local queries qps tps p95 errs recon status
    queries=$(awk '/^ *queries:/{print $2; exit}' "$out")
    qps=$(awk '/^ *queries:/{gsub(/\(/,"",$3); print $3; exit}' "$out")
    tps=$(awk '/^ *transactions:/{gsub(/\(/,"",$3); print $3; exit}' "$out")
    p95=$(awk '/95th percentile:/{print $3; exit}' "$out")
    errs=$(awk '/^ *ignored errors:/{print $3; exit}' "$out")
    recon=$(awk '/^ *reconnects:/{print $2; exit}' "$out")
    # Ignored errors (deadlocks of oltp_read_write: 1213, 1020, 1205 by
    # default) are counted in the errors column but do not fail a run;
    # reconnects, FATAL and a non-zero exit do.
    status=ok
    if ((rc == 124 || rc == 137)); then status=timeout
    elif ((rc != 0)); then status=exit$rc
    elif [[ -z $queries || -z $qps ]]; then status=unparsed
    elif ((${recon:-0} > 0)); then status=reconnects
    fi
    if [[ $status == ok ]] && grep -q -E 'FATAL|ALERT' "$out"; then status=errors-logged; fi
    if [[ $path != direct ]] && ! kill -0 "${PID[$path]}" 2>/dev/null; then status="$status+proxy-died"; fi

    local wall_us=$((t1 - t0)) row
    row=$(awk -v hz="$HZ" -v ncpu="$NCPU" -v wall_us="$wall_us" -v q="${queries:-0}" \
        -v p=$((p1 - p0)) -v m=$((m1 - m0)) -v o=$((o1 - o0)) -v c=$((c1 - c0)) \
        -v mt=$((mt1 - mt0)) -v st=$((st1 - st0)) -v path="$path" 'BEGIN {
            wall = wall_us / 1e6
            proxy = (path == "direct") ? 0 : p
            others = mt - o - c; if (others < 0) others = 0
            cap = wall * ncpu * hz
            p1k = (q > 0 && path != "direct") ? proxy / hz / q * 1000 : 0
            m1k = (q > 0) ? m / hz / q * 1000 : 0
            printf "%.3f,%.2f,%.6f,%.2f,%.6f,%.2f,%.1f,%.1f", wall, proxy / hz, p1k, m / hz, m1k, c / hz,
                (cap > 0 ? 100 * others / cap : 0), (cap > 0 ? 100 * st / cap : 0)
        }')
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
        log "run $path $wl t=$thr failed ($status); sysbench output ($out):"
        tail -25 "$out" >&2
        if [[ $path == session || $path == txn ]]; then
            log "dbrouter log tail ($TMP/dbrouter-$path.log, copied to $OUT at exit):"
            tail -25 "$TMP/dbrouter-$path.log" >&2
        fi
    fi
}
# A FIFO nobody writes to, for sleeping with `read -t` without forking.
exec 9<>"$TMP/tick.fifo"

# wait_quiet: up to QUIET_WAIT s until processes other than ours use at most
# OTHERS_MAX % of the machine (sampled over 2 s). Sets QUIET_PCT.
wait_quiet() {
    local waited=0 b0 o0 b1 o1 t0 t1
    while :; do
        machine_ticks; b0=$BUSY; ours_ticks; o0=$TICKS
        t0=${EPOCHREALTIME/./}
        sleep 2
        t1=${EPOCHREALTIME/./}
        machine_ticks; b1=$BUSY; ours_ticks; o1=$TICKS
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
    log "warm-up: ${WARMUP}s per workload and path at 16 threads"
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
                for ((k = 0; k < n_paths; k++)); do
                    path=${PATHS[$(((k + rep - 1) % n_paths))]}
                    run_one "$path" "$wl" "$thr" "$TIME" "$rep" "$((k + 1))"
                    ((LAST_OTHERS > OTHERS_MAX)) && high=1
                done
                if ((high && attempt < RETRIES && retries_left > 0)); then
                    log "other processes used more than $OTHERS_MAX% of the machine: rerunning this quadruplet"
                    sed -i "${first_line},\$ s/,1\$/,0/" "$CSV"
                    attempt=$((attempt + 1)); retries_left=$((retries_left - 1))
                    continue
                fi
                break
            done
        done
    done
done

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
    awk -F, -v ps="$PS_MODE" -v poolmax="$POOL_MAX" '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(arr, key, v) { arr[key] = (key in arr) ? arr[key] " " v : v }
function fmt(v, f) { return (v == "") ? "-" : sprintf(f, v) }
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
