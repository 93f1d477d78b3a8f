#!/usr/bin/env bash
# The whole test suite, as README's quick start runs it: unit tests,
# integration tests against real MariaDB servers, the fuzz corpora, the
# benches built and run once in test mode, and the doc tests.
#
# Needs mariadbd, mariadb-install-db and mariadb on PATH (Debian packages
# mariadb-server and mariadb-client; .ci/run installs them). Extra arguments
# go to both cargo test runs, e.g. `scripts/test.sh -- --test-threads=1`.
set -euo pipefail
cd "$(dirname "$0")/.."

# mariadbd lives in /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac
for bin in mariadbd mariadb-install-db mariadb; do
    if ! command -v "$bin" >/dev/null; then
        echo "scripts/test.sh: $bin not found; install mariadb-server and mariadb-client (or run .ci/run)" >&2
        exit 1
    fi
done

status=0
# --all-targets: lib, bin, tests/, benches (criterion runs each bench once
# in test mode), examples. It leaves out doc tests, hence the second run.
cargo test --all-targets --no-fail-fast "$@" || status=$?
cargo test --doc "$@" || status=$?
exit "$status"
