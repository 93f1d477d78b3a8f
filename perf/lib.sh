# perf/lib.sh: helpers shared by the scripts of perf/ (sysbench.sh,
# instructions.sh, switches.sh, pool.sh, idle_connections.sh). It is sourced
# by them (`source perf/lib.sh`), not run: it only defines functions and two
# globals (TAKEN, the ports handed out; AWK_STATS, awk functions for the
# summaries) and starts nothing.
#
# Globals the caller sets before using some of these: ROOT (the repository),
# TMP (the run's temporary directory), START_EPOCH and LIMIT (over_limit), HZ
# and NCPU (wait_quiet, cpu_row), OTHERS_MAX and QUIET_WAIT (wait_quiet), and
# for run_reps: PATHS, REPS, WORKLOADS, THREADS, TIME, RETRIES, CSV, n_work,
# n_threads; for sbtest_server and start_dbrouter: SB_USER, SB_PASS,
# ADMIN_USER, ADMIN_PASS, SB_COMMON and the array SERVER_PIDS (which
# stop_servers stops). Hooks the caller defines: cleanup (install_traps;
# start_one_proxy_run defines it itself), ours_ticks (wait_quiet) and run_one
# (run_reps).

# ---------------------------------------------------------------- messages
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- checks
# require_integers MIN NAME...: every named variable is an integer >= MIN
# (MIN 0 or 1), else die naming it.
require_integers() {
    local min=$1 n re='^[0-9]+$' what="a non-negative integer"
    shift
    ((min > 0)) && re='^[1-9][0-9]*$' what="a positive integer"
    for n in "$@"; do
        [[ ${!n} =~ $re ]] || die "$n must be $what (got '${!n}')"
    done
}
# require_commands CMD...: die at the first one not on PATH.
require_commands() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null || die "$cmd not found"
    done
}
# parse_ps_mode: normalises PS_MODE and sets PS_ARGS, sysbench's arguments
# for it ("disable": the text protocol; otherwise its default, prepared
# statements).
parse_ps_mode() {
    case $PS_MODE in
        disable) PS_ARGS=(--db-ps-mode=disable) ;;
        default | auto | "") PS_MODE=default; PS_ARGS=() ;;
        *) die "PS_MODE must be 'default' or 'disable'" ;;
    esac
}
# over_limit: true once the run has taken more than LIMIT seconds.
over_limit() { (($(date +%s) - START_EPOCH > LIMIT)); }

# ---------------------------------------------------------------- processes
# stop_pid pid name seconds: SIGTERM, wait up to N s, then SIGKILL. Bounded,
# so that a hung server cannot keep the run (and its ports) forever.
stop_pid() {
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
# install_traps: the caller's cleanup runs on exit, Ctrl-C and SIGTERM, so
# that nothing it started outlives the script.
install_traps() {
    trap cleanup EXIT
    trap 'log "interrupted"; exit 130' INT
    trap 'log "terminated"; exit 143' TERM
}

# init_one_proxy_run: the paths (haproxy, dbrouter, and dbrouter_b when
# DBROUTER_BIN_B is set), accounts, start time and stamp of a script that
# runs one proxy at a time (then start_one_proxy_run).
init_one_proxy_run() {
    PATHS=(haproxy dbrouter)
    [[ -n ${DBROUTER_BIN_B:-} ]] && PATHS+=(dbrouter_b)
    SB_USER=sbtest
    SB_PASS=sbtest_pw
    ADMIN_USER=dbrouter_admin
    ADMIN_PASS=dbrouter_admin_pw
    START_EPOCH=$(date +%s)
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
}

# start_one_proxy_run name est_seconds: the common start of scripts that
# run one proxy at a time in front of one server (instructions.sh,
# switches.sh). A temporary directory TMP; the results OUT (a directory)
# and CSV named after the script and STAMP; traps whose cleanup stops the
# proxy (PROXY_PID) and the servers (SERVER_PIDS), keeps their logs in OUT
# and removes TMP; the time estimate and its hard LIMIT; the build when
# stale (DBROUTER_BIN, and DBROUTER_BIN_B if set, must then exist); free
# ports MDB_PORT and PROXY_PORT; sysbench's common arguments SB_COMMON; and
# the sbtest server, its pid MDB_PID.
start_one_proxy_run() {
    local name=$1 est=$2
    TMP=$(mktemp -d "/tmp/dbrouter-$name.XXXXXX") || die "mktemp failed"
    OUT=$RESULTS_DIR/$name-$STAMP
    CSV=$RESULTS_DIR/$name-$STAMP.csv
    mkdir -p "$OUT" || die "cannot create $OUT"
    SERVER_PIDS=() PROXY_PID=""
    cleanup() {
        trap - EXIT INT TERM
        stop_pid "$PROXY_PID" proxy 20
        stop_servers
        cp "$TMP"/*.log "$TMP"/mariadbd.err "$OUT/" 2>/dev/null
        rm -rf "$TMP"
        log "stopped everything; logs in $OUT"
    }
    install_traps
    LIMIT=$((est * 3 + 300))
    log "estimated total time: ~$((est / 60)) min $((est % 60)) s (hard limit $((LIMIT / 60)) min)"
    build_if_stale "$OUT/build.log"
    [[ -x $DBROUTER_BIN ]] || die "no dbrouter binary at $DBROUTER_BIN"
    [[ -z ${DBROUTER_BIN_B:-} || -x $DBROUTER_BIN_B ]] || die "no dbrouter binary at $DBROUTER_BIN_B"
    free_port && MDB_PORT=$PORT_FOUND || die "no free port"
    free_port && PROXY_PORT=$PORT_FOUND || die "no free port"
    SB_COMMON=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-user="$SB_USER"
        --mysql-password="$SB_PASS" --mysql-db=sbtest --tables=1 --table-size="$TABLE_SIZE")
    log "mariadbd in $TMP on 127.0.0.1:$MDB_PORT, sbtest1 of $TABLE_SIZE rows"
    sbtest_server "$TMP" "$MDB_PORT" 256M "$OUT/prepare.log"
    MDB_PID=${SERVER_PIDS[0]}
}

# questions: the run's server's Questions counter (it counts its own read).
questions() { root_sql -e "SHOW GLOBAL STATUS LIKE 'Questions'" | awk '{print $2}'; }

# ---------------------------------------------------------------- build
# build_if_stale logfile [note]: cargo build --release when DBROUTER_BIN is
# missing or older than the sources (unless BUILD=0); a failed build falls
# back to an existing binary rather than losing the run. note is appended to
# the log message.
build_if_stale() {
    local build_log=$1 note=${2:-} newest_src
    ((BUILD)) || return 0
    newest_src=$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$DBROUTER_BIN" -print -quit 2>/dev/null)
    [[ ! -x $DBROUTER_BIN || -n $newest_src ]] || return 0
    log "building dbrouter (cargo build --release$note)"
    if ! (cd "$ROOT" && timeout 1800 cargo build --release) >"$build_log" 2>&1; then
        tail -20 "$build_log" >&2
        [[ -x $DBROUTER_BIN ]] || die "build failed and no binary at $DBROUTER_BIN"
        log "WARNING: build failed; using the existing (older) $DBROUTER_BIN"
    fi
}
# git_rev: short HEAD, "+dirty-src" when src/ has uncommitted changes (the
# binary measured may then not be HEAD's).
git_rev() {
    echo "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo "+dirty-src")"
}

# ---------------------------------------------------------------- ports
declare -gA TAKEN=()
# free_port [span]: sets PORT_FOUND to a port in 20000..20000+span-1 (span
# 40000 by default) that nobody listens on or connects from, and that this
# run has not handed out yet. Bounded search: returns 1 when none is found.
free_port() {
    local span=${1:-40000} i p
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % span))
        [[ -n ${TAKEN[$p]:-} ]] && continue
        if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then
            TAKEN[$p]=1
            PORT_FOUND=$p
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- readiness
# wait_sql port user password seconds [pid [db]]: wait until SELECT 1 works
# over TCP. With pid, give up as soon as that process has exited.
wait_sql() {
    local port=$1 user=$2 pass=$3 secs=$4 pid=${5:-} db=${6:-} i
    for ((i = 0; i < secs * 4; i++)); do
        if mariadb --no-defaults -h127.0.0.1 -P"$port" -u"$user" -p"$pass" \
            --connect-timeout=2 -N -e 'SELECT 1' ${db:+"$db"} >/dev/null 2>&1; then
            return 0
        fi
        [[ -z $pid ]] || kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

# ---------------------------------------------------------------- mariadbd
# A throwaway server lives in a directory DIR: DIR/data, DIR/sock,
# DIR/mariadbd.err. Root logs in on the socket without a password.
dir_sql() { # dir mariadb-args...: a root client on DIR's socket
    local dir=$1
    shift
    mariadb --no-defaults -S "$dir/sock" -uroot -N "$@"
}
root_sql() { dir_sql "$TMP" "$@"; } # the run's main server, in $TMP
# install_datadir dir: an empty data directory in DIR/data (its log tail on
# failure; the caller says what failed).
install_datadir() {
    local dir=$1
    mkdir -p "$dir" || return 1
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
        >"$dir/install.log" 2>&1 || { tail -20 "$dir/install.log" >&2; return 1; }
}
# start_mariadbd dir port [mariadbd flags...]: in the background, on
# 127.0.0.1 only, ignoring every option file (--no-defaults) so that the
# machine's my.cnf does not change what is measured -> MARIADBD_PID.
start_mariadbd() {
    local dir=$1 port=$2
    shift 2
    mariadbd --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
        --socket="$dir/sock" --pid-file="$dir/mariadbd.pid" --user=root \
        --log-error="$dir/mariadbd.err" "$@" &
    MARIADBD_PID=$!
}
# wait_mariadbd dir pid: up to 30 s for root to get an answer on the socket;
# die (with the server's error log tail) if it exits or does not answer.
wait_mariadbd() {
    local dir=$1 pid=$2 i
    for ((i = 0; i < 120; i++)); do
        dir_sql "$dir" -e 'SELECT 1' >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/mariadbd.err" >&2; die "mariadbd exited"; }
        sleep 0.25
    done
    dir_sql "$dir" -e 'SELECT 1' >/dev/null 2>&1 || die "mariadbd not ready after 30 s"
}
# drop_anonymous_users dir: a fresh data directory has anonymous accounts
# (''@localhost and the like), which would shadow 'user'@'127.0.0.1' lookups.
drop_anonymous_users() {
    local dir=$1 anon
    anon=$(dir_sql "$dir" -e "SELECT CONCAT('DROP USER ''''@''', Host, ''';') FROM mysql.global_priv WHERE User=''") || die "cannot list users"
    [[ -n $anon ]] && { dir_sql "$dir" -e "$anon" || die "cannot drop anonymous users"; }
    return 0
}
# sbtest_server dir port buffer_pool prepare_log: a mariadbd for sysbench in
# DIR on PORT with the benchmark flags of BENCHMARKING.md, the sbtest
# database, the accounts SB_USER (sbtest.*) and ADMIN_USER (reads
# mysql.*, for dbrouter's backend accounts), and sbtest1 prepared with
# SB_COMMON -> MARIADBD_PID, also appended to SERVER_PIDS at once so that
# the caller's cleanup stops it even if a later step dies.
sbtest_server() {
    local dir=$1 port=$2 pool=$3 prepare_log=$4
    install_datadir "$dir" || die "mariadb-install-db failed in $dir"
    start_mariadbd "$dir" "$port" \
        --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size="$pool" \
        --performance-schema=OFF --skip-name-resolve --max-connections=500
    SERVER_PIDS+=("$MARIADBD_PID")
    wait_mariadbd "$dir" "$MARIADBD_PID"
    drop_anonymous_users "$dir"
    dir_sql "$dir" <<SQL || die "cannot create users in $dir"
CREATE DATABASE sbtest;
CREATE USER '$SB_USER'@'127.0.0.1' IDENTIFIED BY '$SB_PASS';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON sbtest.* TO '$SB_USER'@'127.0.0.1';
CREATE USER '$ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PASS';
GRANT SELECT ON mysql.* TO '$ADMIN_USER'@'127.0.0.1';
SQL
    timeout 600 sysbench oltp_read_only "${SB_COMMON[@]}" --mysql-port="$port" prepare \
        >"$prepare_log" 2>&1 || { tail -20 "$prepare_log" >&2; die "sysbench prepare failed in $dir"; }
}
# stop_servers: every server sbtest_server started (SERVER_PIDS).
stop_servers() {
    local pid
    for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do stop_pid "$pid" mariadbd 60; done
}

# start_dbrouter bin port backend_port log [command...]: dbrouter for one
# backend (--listen/--backend, serving the accounts it reads as ADMIN_USER)
# with REACTORS reactors, pinned as PIN says, under COMMAND if given
# (valgrind, say), in the background -> STARTED_PID.
start_dbrouter() {
    local bin=$1 port=$2 backend=$3 log=$4
    shift 4
    DBROUTER_ADMIN_USER=$ADMIN_USER DBROUTER_ADMIN_PASSWORD=$ADMIN_PASS \
        "$@" "$bin" --listen "127.0.0.1:$port" --backend "127.0.0.1:$backend" \
        --reactors "${REACTORS:-2}" --pin-cores "${PIN:-true}" >"$log" 2>&1 &
    STARTED_PID=$!
}

# ---------------------------------------------------------------- haproxy
# start_haproxy port backend_port global_maxconn [listen_maxconn]: HAProxy
# in TCP mode with HAPROXY_THREADS threads (default 2), a plain byte
# forwarder (the cost floor of any proxy on this path), config and log in
# $TMP -> HAP_PID. HAPROXY_PIN=true pins thread i to core i (cpu-map), as
# dbrouter pins its reactors, so that the two are compared like for like.
# HAPROXY_WRAP, an array, is a command haproxy runs under (valgrind, say).
start_haproxy() {
    local port=$1 backend=$2 maxconn=$3 listen_maxconn=${4:-} threads=${HAPROXY_THREADS:-2}
    {
        cat <<CFG
global
    nbthread $threads
    maxconn $maxconn
CFG
        [[ ${HAPROXY_PIN:-false} == true ]] && echo "    cpu-map auto:1/1-$threads 0-$((threads - 1))"
        cat <<CFG
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen mysql
    bind 127.0.0.1:$port
CFG
        [[ -n $listen_maxconn ]] && echo "    maxconn $listen_maxconn"
        echo "    server db 127.0.0.1:$backend"
    } >"$TMP/haproxy.cfg"
    ${HAPROXY_WRAP[@]+"${HAPROXY_WRAP[@]}"} haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
    HAP_PID=$!
}

# tool_versions: the meta.txt line naming the server, HAProxy and sysbench.
tool_versions() {
    echo "mariadbd=$(root_sql -e 'SELECT VERSION()') haproxy=$(haproxy -v | awk 'NR==1{print $3}') sysbench=$(sysbench --version | awk '{print $2}')"
}

# ---------------------------------------------------------------- CPU ticks
# The readers below use builtins only and set globals (no fork), so nothing
# is added to the calling shell's children's CPU time between two readings.
# CPU ticks (utime+stime) of a process -> TICKS, and of them in user space
# (utime) -> UTICKS (both 0 if gone)
proc_ticks() {
    local s
    TICKS=0 UTICKS=0
    [[ -n $1 && -r /proc/$1/stat ]] || return 0
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 0
    s=${s##*) }
    local -a f=($s)
    TICKS=$((f[11] + f[12])) UTICKS=${f[11]}
}
# Context switches of all the threads of a process -> VCS (voluntary: it
# waited, e.g. in epoll_wait) and ICS (involuntary: it was preempted); both
# 0 if gone.
proc_switches() {
    local f k n
    VCS=0 ICS=0
    [[ -n $1 ]] || return 0
    for f in /proc/"$1"/task/*/status; do
        [[ -r $f ]] || continue
        while read -r k n; do
            case $k in
                voluntary_ctxt_switches:) VCS=$((VCS + n)) ;;
                nonvoluntary_ctxt_switches:) ICS=$((ICS + n)) ;;
            esac
        done <"$f" 2>/dev/null
    done
}
sum_ticks() { # pid...: their CPU ticks together -> TICKS
    local sum=0 p
    for p in "$@"; do
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

# wait_quiet: up to QUIET_WAIT s until processes other than ours (the
# caller's ours_ticks) use at most OTHERS_MAX % of the machine (sampled over
# 2 s), so that a run does not measure another job's load. Sets QUIET_PCT.
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

# ---------------------------------------------------------------- one run
# parse_sysbench file: sysbench's figures from its output -> SB_QUERIES,
# SB_QPS, SB_TPS, SB_P95, SB_ERRS, SB_RECON (empty when absent).
parse_sysbench() {
    local out=$1
    SB_QUERIES=$(awk '/^ *queries:/{print $2; exit}' "$out")
    SB_QPS=$(awk '/^ *queries:/{gsub(/\(/,"",$3); print $3; exit}' "$out")
    SB_TPS=$(awk '/^ *transactions:/{gsub(/\(/,"",$3); print $3; exit}' "$out")
    SB_P95=$(awk '/95th percentile:/{print $3; exit}' "$out")
    SB_ERRS=$(awk '/^ *ignored errors:/{print $3; exit}' "$out")
    SB_RECON=$(awk '/^ *reconnects:/{print $2; exit}' "$out")
}
# run_status rc: what every script calls a failed sysbench run, from its exit
# status and SB_QUERIES/SB_QPS: timeout, exitN, unparsed, else ok (the caller
# adds its own checks on ok).
run_status() {
    local rc=$1
    if ((rc == 124 || rc == 137)); then echo timeout
    elif ((rc != 0)); then echo "exit$rc"
    elif [[ -z $SB_QUERIES || -z $SB_QPS ]]; then echo unparsed
    else echo ok
    fi
}
# cpu_row wall_us queries proxy server ours sysbench busy steal (tick deltas;
# proxy 0 on the direct path): the CSV fields wall_s, proxy_cpu_s,
# proxy_cpu_s_per_1kq, mariadbd_cpu_s, mariadbd_cpu_s_per_1kq, sysbench_cpu_s,
# others_cpu_pct, steal_pct. "Others" is the machine's busy time minus ours
# and sysbench's, as a share of all CPUs over the wall time.
cpu_row() {
    awk -v hz="$HZ" -v ncpu="$NCPU" -v wall_us="$1" -v q="$2" -v proxy="$3" -v m="$4" \
        -v o="$5" -v c="$6" -v mt="$7" -v st="$8" 'BEGIN {
            wall = wall_us / 1e6
            others = mt - o - c; if (others < 0) others = 0
            cap = wall * ncpu * hz
            p1k = (q > 0) ? proxy / hz / q * 1000 : 0
            m1k = (q > 0) ? m / hz / q * 1000 : 0
            printf "%.3f,%.2f,%.6f,%.2f,%.6f,%.2f,%.1f,%.1f", wall, proxy / hz, p1k, m / hz, m1k, c / hz,
                (cap > 0 ? 100 * others / cap : 0), (cap > 0 ? 100 * st / cap : 0)
        }'
}
# show_failed_run path workload threads status out [dbrouter_log]: the tail of
# sysbench's output and, for a dbrouter path, of its log, so that a failure
# can be read without digging in the results directory.
show_failed_run() {
    local path=$1 wl=$2 thr=$3 status=$4 out=$5 dbr_log=${6:-}
    log "run $path $wl t=$thr failed ($status); sysbench output ($out):"
    tail -25 "$out" >&2
    if [[ -n $dbr_log ]]; then
        log "dbrouter log tail ($dbr_log, copied to $OUT at exit):"
        tail -25 "$dbr_log" >&2
    fi
}

# ---------------------------------------------------------------- repetitions
# run_reps group: every (rep, workload, threads) runs all PATHS back to back
# through the caller's run_one, the order rotated each repetition so that no
# path always runs first or last; repetitions outermost, so that they spread
# over the whole run. A group during which other processes went above
# OTHERS_MAX is rerun (RETRIES times at most), its rows kept with valid=0.
# group names such a set of runs in messages ("triplet", "quadruplet").
run_reps() {
    local group=$1 n_paths=${#PATHS[@]} rep wl thr attempt first_line high k path
    local retries_left=$((RETRIES * n_work * n_threads * REPS))
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
                        log "other processes used more than $OTHERS_MAX% of the machine: rerunning this $group"
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
}

# ---------------------------------------------------------------- summaries
# awk functions for the summary tables, prepended to the scripts' programs:
# median of a space-separated list, add to such a list, format or "-".
AWK_STATS='
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(arr, key, v) { arr[key] = (key in arr) ? arr[key] " " v : v }
function fmt(v, f) { return (v == "") ? "-" : sprintf(f, v) }
'
