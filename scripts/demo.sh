#!/usr/bin/env bash
# A local dbrouter demo from the Debian binaries: MariaDB shards and a proxy
# on loopback, everything under ./demo/ (gitignored).
#
#   scripts/demo.sh          start (or check) the demo, run a sample query
#   scripts/demo.sh stop     stop the proxy and the servers, keep the data
#   scripts/demo.sh clean    stop, then delete ./demo/
#   scripts/demo.sh status   show what runs
#
# Ports: backends from DEMO_BACKEND_PORT (3307, 3308, ...), the proxy on
# DEMO_PROXY_PORT (6033); a busy port is replaced by the next free one and
# the choice is kept in demo/ports.env. DEMO_SHARDS sets the number of
# shards (default 2): table `users` is sharded by `userid`, `greetings` is a
# global table (on shard 0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/demo
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

SHARDS=${DEMO_SHARDS:-2}
DEMO_USER=demo
DEMO_PASSWORD=demo_password
ADMIN_USER=dbrouter_admin

say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# Whether something accepts TCP connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether pid $1 runs and its command line contains $2 (never act on a
# recycled pid that is not ours).
ours() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}

# Stops pid file $1 whose process has $2 in its command line: SIGTERM,
# up to $3 seconds, then SIGKILL.
stop_pidfile() {
    local pidfile=$1 pattern=$2 wait=$3 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ours "$pid" "$pattern"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq $((wait * 10))); do
            ours "$pid" "$pattern" || break
            sleep 0.1
        done
        if ours "$pid" "$pattern"; then
            say "  $pattern ($pid) did not stop in ${wait}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "  stopped $pattern ($pid)"
    fi
    rm -f "$pidfile"
}

stop() {
    say "stopping the demo"
    stop_pidfile "$DEMO/dbrouter.pid" dbrouter 15
    for dir in "$DEMO"/shard*; do
        [ -d "$dir" ] || continue
        stop_pidfile "$dir/data/pid" mariadbd 60
    done
}

status() {
    if [ -f "$DEMO/ports.env" ]; then
        # shellcheck disable=SC1091
        . "$DEMO/ports.env"
    fi
    local pid
    pid=$(cat "$DEMO/dbrouter.pid" 2>/dev/null || true)
    if ours "$pid" dbrouter; then say "dbrouter: running, pid $pid, port ${PROXY_PORT:-?}"; else say "dbrouter: stopped"; fi
    for dir in "$DEMO"/shard*; do
        [ -d "$dir" ] || continue
        pid=$(cat "$dir/data/pid" 2>/dev/null || true)
        if ours "$pid" mariadbd; then say "$(basename "$dir"): running, pid $pid"; else say "$(basename "$dir"): stopped"; fi
    done
}

install_packages() {
    local missing=()
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    command -v mariadb >/dev/null || missing+=(mariadb-client)
    [ "${#missing[@]}" -eq 0 ] && return
    say "installing ${missing[*]}"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" </dev/null
}

# The first port from $1 up that nothing listens on and no other demo part
# uses; $2... are the ports already taken.
pick_port() {
    local port=$1
    shift
    while listening "$port" || [[ " $* " == *" $port "* ]]; do
        port=$((port + 1))
    done
    echo "$port"
}

choose_ports() {
    if [ -f "$DEMO/ports.env" ]; then
        # shellcheck disable=SC1091
        . "$DEMO/ports.env"
        return
    fi
    local taken=() i port
    BACKEND_PORTS=()
    port=${DEMO_BACKEND_PORT:-3307}
    for ((i = 0; i < SHARDS; i++)); do
        port=$(pick_port "$port" "${taken[@]}")
        BACKEND_PORTS+=("$port")
        taken+=("$port")
        port=$((port + 1))
    done
    PROXY_PORT=$(pick_port "${DEMO_PROXY_PORT:-6033}" "${taken[@]}")
    {
        echo "BACKEND_PORTS=(${BACKEND_PORTS[*]})"
        echo "PROXY_PORT=$PROXY_PORT"
    } >"$DEMO/ports.env"
}

mariadb_root() { # PORT ARGS...
    local port=$1
    shift
    mariadb --no-defaults -h127.0.0.1 -P"$port" --protocol=TCP -uroot --default-character-set=utf8mb4 "$@"
}

start_shard() { # INDEX PORT
    local i=$1 port=$2 dir="$DEMO/shard$1" pid
    local data="$dir/data"
    mkdir -p "$dir"
    if [ ! -d "$data/mysql" ]; then
        say "shard $i: creating the data directory"
        mariadb-install-db --no-defaults --datadir="$data" --auth-root-authentication-method=normal \
            --skip-test-db --innodb-buffer-pool-size=64M --innodb-log-file-size=16M >"$dir/install.log" 2>&1 ||
            { cat "$dir/install.log" >&2; die "mariadb-install-db failed for shard $i"; }
    fi
    pid=$(cat "$data/pid" 2>/dev/null || true)
    if ours "$pid" mariadbd; then
        say "shard $i: mariadbd already running (pid $pid, port $port)"
    else
        listening "$port" && die "port $port is taken by another program; remove demo/ports.env to choose again"
        local user_flag=()
        [ "$(id -u)" -eq 0 ] && user_flag=(--user=root)
        nohup mariadbd --no-defaults --datadir="$data" --port="$port" --bind-address=127.0.0.1 \
            --socket="$data/sock" --pid-file="$data/pid" "${user_flag[@]}" \
            --max-allowed-packet=64M --skip-name-resolve --innodb-buffer-pool-size=64M \
            --innodb-log-file-size=16M --performance-schema=OFF --local-infile=1 \
            >>"$dir/mariadbd.log" 2>&1 </dev/null &
        say "shard $i: starting mariadbd on port $port"
    fi
    for _ in $(seq 300); do
        mariadb_root "$port" -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 30 "$dir/mariadbd.log" >&2
    die "shard $i: mariadbd did not accept logins within 30 s (log above: $dir/mariadbd.log)"
}

# Accounts and sample data, idempotent.
setup_shard() { # INDEX PORT
    local i=$1 port=$2
    mariadb_root "$port" <<SQL
CREATE DATABASE IF NOT EXISTS demo CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$DEMO_USER'@'%' IDENTIFIED BY '$DEMO_PASSWORD';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES,
  LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW ON demo.* TO '$DEMO_USER'@'%';
CREATE USER IF NOT EXISTS '$ADMIN_USER'@'%' IDENTIFIED BY '$ADMIN_PASSWORD';
ALTER USER '$ADMIN_USER'@'%' IDENTIFIED BY '$ADMIN_PASSWORD';
GRANT SELECT ON mysql.* TO '$ADMIN_USER'@'%';
CREATE TABLE IF NOT EXISTS demo.greetings (
  id INT PRIMARY KEY, shard INT NOT NULL, text VARCHAR(100) NOT NULL);
INSERT IGNORE INTO demo.greetings VALUES
  (1, $i, 'hello from shard $i'), (2, $i, 'grüß dich'), (3, $i, 'こんにちは');
CREATE TABLE IF NOT EXISTS demo.users (
  userid BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL);
SQL
}

write_config() {
    local hash port i
    hash=$(mariadb_root "${BACKEND_PORTS[0]}" -N -e "SELECT PASSWORD('$DEMO_PASSWORD')")
    {
        echo "# Written by scripts/demo.sh; rewritten on every start."
        echo "[proxy]"
        echo "listen = \"127.0.0.1:$PROXY_PORT\""
        echo
        echo "# A user the proxy knows itself (hash: SELECT PASSWORD('...'))."
        echo "[[user]]"
        echo "name = \"$DEMO_USER\""
        echo "password_hash = \"$hash\""
        echo
        echo "# And every account the backends know, read with this one."
        echo "[backend_users]"
        echo "admin_user = \"$ADMIN_USER\""
        echo "admin_password = \"$ADMIN_PASSWORD\""
        echo
        echo "[sharding]"
        echo "buckets = 1024"
        echo "default_shard = 0"
        echo
        echo "[[table]]"
        echo "name = \"users\""
        echo "key = \"userid\""
        echo "key_type = \"int\""
        echo
        echo "[[table]]"
        echo "name = \"greetings\""
        echo "global = true"
        i=0
        for port in "${BACKEND_PORTS[@]}"; do
            echo
            echo "[[shard]]"
            echo "id = $i"
            echo "master = \"127.0.0.1:$port\""
            i=$((i + 1))
        done
    } >"$DEMO/dbrouter.toml"
}

start_proxy() {
    local pid
    pid=$(cat "$DEMO/dbrouter.pid" 2>/dev/null || true)
    if ours "$pid" dbrouter; then
        say "dbrouter: already running (pid $pid); restarting it to read demo/dbrouter.toml"
        stop_pidfile "$DEMO/dbrouter.pid" dbrouter 15
    fi
    listening "$PROXY_PORT" && die "port $PROXY_PORT is taken by another program; remove demo/ports.env to choose again"
    RUST_LOG=${RUST_LOG:-info} nohup "$ROOT/target/release/dbrouter" --config "$DEMO/dbrouter.toml" \
        >>"$DEMO/dbrouter.log" 2>&1 </dev/null &
    echo $! >"$DEMO/dbrouter.pid"
    say "dbrouter: starting on port $PROXY_PORT (pid $!)"
    for _ in $(seq 300); do
        if mariadb --no-defaults -h127.0.0.1 -P"$PROXY_PORT" --protocol=TCP -u"$DEMO_USER" \
            -p"$DEMO_PASSWORD" -e 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        ours "$(cat "$DEMO/dbrouter.pid")" dbrouter || break
        sleep 0.1
    done
    tail -n 30 "$DEMO/dbrouter.log" >&2
    die "dbrouter does not serve logins on port $PROXY_PORT (log above: demo/dbrouter.log)"
}

start() {
    mkdir -p "$DEMO"
    install_packages
    say "building dbrouter (release)"
    cargo build --release --bin dbrouter
    choose_ports
    if [ ! -s "$DEMO/admin_password" ]; then
        head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DEMO/admin_password"
    fi
    ADMIN_PASSWORD=$(cat "$DEMO/admin_password")
    local i
    for ((i = 0; i < ${#BACKEND_PORTS[@]}; i++)); do
        start_shard "$i" "${BACKEND_PORTS[$i]}"
        setup_shard "$i" "${BACKEND_PORTS[$i]}"
    done
    write_config
    start_proxy

    local proxy=(mariadb --no-defaults -h127.0.0.1 -P"$PROXY_PORT" --protocol=TCP -u"$DEMO_USER"
        -p"$DEMO_PASSWORD" --default-character-set=utf8mb4 --table demo)
    say ""
    say "through dbrouter: a global table (served by shard 0)"
    "${proxy[@]}" -e 'SELECT * FROM greetings ORDER BY id'
    say "through dbrouter: 20 users written, each to the shard of its userid"
    for userid in $(seq 1 20); do
        "${proxy[@]}" -e "INSERT IGNORE INTO users (userid, name) VALUES ($userid, 'user $userid')"
    done
    "${proxy[@]}" -e 'SELECT userid, name FROM users WHERE userid = 7'
    for ((i = 0; i < ${#BACKEND_PORTS[@]}; i++)); do
        say "  shard $i holds userids: $(mariadb_root "${BACKEND_PORTS[$i]}" -N -e \
            'SELECT GROUP_CONCAT(userid ORDER BY userid) FROM demo.users')"
    done
    say "through dbrouter: a statement without its shard key is refused:"
    "${proxy[@]}" -e 'SELECT COUNT(*) FROM users' 2>&1 || true
    cat <<INFO

The demo runs:
  dbrouter   127.0.0.1:$PROXY_PORT   config demo/dbrouter.toml, log demo/dbrouter.log
$(for ((i = 0; i < ${#BACKEND_PORTS[@]}; i++)); do echo "  shard $i    127.0.0.1:${BACKEND_PORTS[$i]}   data demo/shard$i/data, log demo/shard$i/mariadbd.log"; done)

Connect through the proxy:
  mariadb -h127.0.0.1 -P$PROXY_PORT --protocol=TCP -u$DEMO_USER -p$DEMO_PASSWORD demo
  mysql://$DEMO_USER:$DEMO_PASSWORD@127.0.0.1:$PROXY_PORT/demo

Stop it:   scripts/demo.sh stop      (data kept; start again with scripts/demo.sh)
Remove it: scripts/demo.sh clean
INFO
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
clean)
    stop
    rm -rf "$DEMO"
    say "removed demo/"
    ;;
*) die "usage: scripts/demo.sh [start|stop|status|clean]" ;;
esac
