#!/usr/bin/env bash
# The whole test suite, as README's quick start runs it: unit tests,
# integration tests against real MariaDB servers, the fuzz corpora, the
# benches built and run once in test mode, and the doc tests.
#
# Needs mariadbd, mariadb-install-db and mariadb (Debian packages
# mariadb-server and mariadb-client): installed with apt-get when missing.
# Extra arguments go to both cargo test runs, e.g.
# `scripts/test.sh -- --test-threads=1`.
set -euo pipefail
cd "$(dirname "$0")/.."

# mariadbd lives in /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac
missing=()
command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]}"
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" </dev/null
fi

status=0
# --all-targets: lib, bin, tests/, benches (criterion runs each bench once
# in test mode), examples. It leaves out doc tests, hence the second run.
cargo test --all-targets --no-fail-fast "$@" || status=$?
cargo test --doc "$@" || status=$?
exit "$status"
