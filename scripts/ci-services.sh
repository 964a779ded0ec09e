#!/usr/bin/env bash
# CI: what the tracking tests need besides pip packages (mlflow and psycopg2-binary come with `.[dev]`):
# Debian's PostgreSQL binaries (initdb, pg_ctl) for the throwaway cluster that tests/tracking_servers.py starts
# on a free loopback port. Nothing is started here: each test starts and stops its own cluster and mlflow server.
# Without root or apt the PostgreSQL tests are skipped with that reason; the SQLite-store tests still run.
set -euo pipefail
log() { echo "ci-services: $*" >&2; }
if command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    log "PostgreSQL binaries present"
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing postgresql"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
else
    log "no PostgreSQL and no way to install it: the PostgreSQL tests will be skipped"
fi
