#!/usr/bin/env bash
# perf/idle_connections.sh: the resident memory dbrouter needs per idle client
# connection. N clients (default 10,000) connect through dbrouter, log in, run
# SELECT 1 once each and stay connected, idle; dbrouter's VmRSS is read before
# and after, and the difference divided by N is the figure (issue 4: at most
# 16 KiB). In session mode each client also holds one backend connection, so
# mariadbd runs with max_connections above N and thread_handling =
# pool-of-threads (no thread per connection).
#
# Everything (mariadbd, dbrouter, the clients: examples/idle_clients.rs) is
# started from this shell on 127.0.0.1, on free ports, in a temporary
# directory, and stopped on exit (also on Ctrl-C or failure). See
# perf/README.md.
#
# Environment (defaults in brackets):
#   N [10000]          idle client connections to hold
#   CONCURRENCY [32]   connections being opened at the same time
#   REACTORS [2]       dbrouter --reactors
#   POOL_MODE [session] dbrouter --pool-mode: in transaction mode an idle client
#                      holds no backend connection (at most pool.max_per_shard
#                      in all), so dbrouter needs one socket per client
#   SETTLE [3]         seconds to wait after the last connection before reading RSS
#   DBROUTER_BIN [$CARGO_TARGET_DIR or target]/release/dbrouter; built with
#                      cargo (with the idle_clients example) unless BUILD=0
#   CLIENT_BIN [.../release/examples/idle_clients]
#   RUST_LOG [warn]    dbrouter's log level
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=perf/lib.sh
source "$ROOT/perf/lib.sh"
N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-32}
REACTORS=${REACTORS:-2}
POOL_MODE=${POOL_MODE:-session}
SETTLE=${SETTLE:-3}
BUILD=${BUILD:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DBROUTER_BIN=${DBROUTER_BIN:-$TARGET/release/dbrouter}
CLIENT_BIN=${CLIENT_BIN:-$TARGET/release/examples/idle_clients}
export RUST_LOG=${RUST_LOG:-warn}

APP_USER=idle
APP_PASS=idle_pw
ADMIN_USER=dbrouter_admin
ADMIN_PASS=dbrouter_admin_pw

require_integers 1 N CONCURRENCY REACTORS SETTLE
require_commands mariadbd mariadb-install-db mariadb ss timeout

# dbrouter holds 2 sockets per client (client + backend), mariadbd and the
# client process one each: raise the limit of this shell, inherited by all.
# Without CAP_SYS_RESOURCE the hard limit cannot be raised: N must then fit
# in it (in a container with a hard limit of 20000, N is at most 9968).
[[ $POOL_MODE == session || $POOL_MODE == transaction ]] || die "POOL_MODE must be session or transaction"
if [[ $POOL_MODE == transaction ]]; then NEED=$((N + 128)); else NEED=$((2 * N + 64)); fi
WANT=$((4 * N + 8192))
ulimit -Hn "$WANT" 2>/dev/null
HARD=$(ulimit -Hn)
[[ $HARD == unlimited ]] && HARD=$WANT
ulimit -n "$((HARD < WANT ? HARD : WANT))" 2>/dev/null
(($(ulimit -n) >= NEED)) || die "dbrouter needs $NEED open files for N=$N, the hard limit is $HARD (not raisable here): use a smaller N (session mode: N <= $(((HARD - 64) / 2)); transaction mode: N <= $((HARD - 128)))"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/dbrouter-idle.XXXXXX) || die "mktemp failed"
MDB_PID="" DBR_PID="" CLI_PID=""
cleanup() {
    trap - EXIT INT TERM
    stop_pid "$CLI_PID" idle_clients 10
    stop_pid "$DBR_PID" dbrouter 20
    stop_pid "$MDB_PID" mariadbd 60
    rm -rf "$TMP"
    log "stopped everything"
}
install_traps

# ---------------------------------------------------------------- build
if ((BUILD)); then
    log "building dbrouter and examples/idle_clients (cargo build --release)"
    (cd "$ROOT" && timeout 1800 cargo build --release --bin dbrouter --example idle_clients) \
        >"$TMP/build.log" 2>&1 || { tail -20 "$TMP/build.log" >&2; die "build failed"; }
fi
[[ -x $DBROUTER_BIN ]] || die "no dbrouter binary at $DBROUTER_BIN"
[[ -x $CLIENT_BIN ]] || die "no idle_clients binary at $CLIENT_BIN"

# ---------------------------------------------------------------- ports
# Below the ephemeral range (32768+ here), which 2 x N connections use.
free_port 12000 && MDB_PORT=$PORT_FOUND || die "no free port"
free_port 12000 && DBR_PORT=$PORT_FOUND || die "no free port"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
kib() { awk -v k="$1" 'BEGIN { printf "%.1f", k }'; }

# ---------------------------------------------------------------- mariadbd
log "mariadbd: installing a data directory in $TMP/data"
install_datadir "$TMP" || die "mariadb-install-db failed"
start_mariadbd "$TMP" "$MDB_PORT" --performance-schema=OFF --skip-name-resolve \
    --innodb-buffer-pool-size=64M --max-connections=$((N + 100)) \
    --open-files-limit="$(ulimit -n)" --thread-handling=pool-of-threads --back-log=4096
MDB_PID=$MARIADBD_PID
wait_mariadbd "$TMP" "$MDB_PID"
log "mariadbd $(root_sql -e 'SELECT VERSION()') on 127.0.0.1:$MDB_PORT (pid $MDB_PID), max_connections $(root_sql -e 'SELECT @@max_connections')"

drop_anonymous_users "$TMP"
root_sql <<SQL || die "cannot create users"
CREATE DATABASE idle;
CREATE USER '$APP_USER'@'127.0.0.1' IDENTIFIED BY '$APP_PASS';
GRANT SELECT ON idle.* TO '$APP_USER'@'127.0.0.1';
CREATE USER '$ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PASS';
GRANT SELECT ON mysql.* TO '$ADMIN_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------- dbrouter
DBROUTER_ADMIN_USER=$ADMIN_USER DBROUTER_ADMIN_PASSWORD=$ADMIN_PASS \
    "$DBROUTER_BIN" --listen "127.0.0.1:$DBR_PORT" --backend "127.0.0.1:$MDB_PORT" \
    --reactors "$REACTORS" --pool-mode "$POOL_MODE" >"$TMP/dbrouter.log" 2>&1 &
DBR_PID=$!
wait_sql "$DBR_PORT" "$APP_USER" "$APP_PASS" 30 "$DBR_PID" idle ||
    { tail -30 "$TMP/dbrouter.log" >&2; die "dbrouter not answering on $DBR_PORT"; }
log "dbrouter on 127.0.0.1:$DBR_PORT (pid $DBR_PID, $REACTORS reactors, $(basename "$DBROUTER_BIN") built $(date -r "$DBROUTER_BIN" '+%F %T'))"

# ---------------------------------------------------------------- measure
# Baseline: the proxy has served one session (the readiness check above), as
# it would have in production before the clients come.
sleep 1
DBR_BEFORE=$(rss_kib "$DBR_PID")
MDB_BEFORE=$(rss_kib "$MDB_PID")
log "before: dbrouter VmRSS $DBR_BEFORE KiB, mariadbd VmRSS $MDB_BEFORE KiB"

log "opening $N idle connections through dbrouter, $CONCURRENCY at a time"
"$CLIENT_BIN" --port "$DBR_PORT" --user "$APP_USER" --password "$APP_PASS" --db idle \
    -n "$N" --concurrency "$CONCURRENCY" >"$TMP/clients.out" 2>"$TMP/clients.err" &
CLI_PID=$!
T0=$(date +%s)
while ! grep -q '^held ' "$TMP/clients.out" 2>/dev/null; do
    if ! kill -0 "$CLI_PID" 2>/dev/null; then
        cat "$TMP/clients.err" >&2
        tail -20 "$TMP/dbrouter.log" >&2
        die "idle_clients exited before holding $N connections"
    fi
    (($(date +%s) - T0 > 60 + N / 20)) && die "idle_clients did not finish opening connections in time"
    sleep 0.5
done
OPEN_S=$(($(date +%s) - T0))
sleep "$SETTLE"

kill -0 "$DBR_PID" 2>/dev/null || die "dbrouter died"
DBR_AFTER=$(rss_kib "$DBR_PID")
MDB_AFTER=$(rss_kib "$MDB_PID")
CLIENTS=$(ss -Htn state established "( sport = :$DBR_PORT )" | wc -l)
BACKENDS=$(root_sql -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'THREADS_CONNECTED'")
DBR_THREADS=$(awk '/^Threads:/ { print $2 }' "/proc/$DBR_PID/status")
PER_CONN=$(awk -v a="$DBR_AFTER" -v b="$DBR_BEFORE" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }')
MDB_PER_CONN=$(awk -v a="$MDB_AFTER" -v b="$MDB_BEFORE" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')
VERDICT=$(awk -v p="$PER_CONN" 'BEGIN { print (p <= 16) ? "meets" : "DOES NOT meet" }')
GIT_REV=$(git_rev)

echo
echo "idle connections through dbrouter: N=$N (opened $CONCURRENCY at a time in ${OPEN_S}s), --reactors $REACTORS, --pool-mode $POOL_MODE, git $GIT_REV, $(date -u '+%F %H:%M') UTC"
echo "  established client connections: $CLIENTS; mariadbd Threads_connected: $BACKENDS (session mode: one backend each; transaction mode: the pool's; plus the accounts reader)"
echo "  dbrouter VmRSS before: $DBR_BEFORE KiB   after: $DBR_AFTER KiB   ($DBR_THREADS threads)"
echo "  dbrouter RSS per idle connection: $PER_CONN KiB ($VERDICT the 16 KiB target)"
echo "  mariadbd VmRSS before: $MDB_BEFORE KiB   after: $MDB_AFTER KiB   per connection: $MDB_PER_CONN KiB (for scale)"
errlines=$(grep -c -i -E 'error|panic' "$TMP/dbrouter.log" 2>/dev/null)
((${errlines:-0} > 0)) && { log "dbrouter log has $errlines error lines:"; grep -i -E 'error|panic' "$TMP/dbrouter.log" | head -5 >&2; }
exit 0
