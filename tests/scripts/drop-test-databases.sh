#!/usr/bin/env bash
# Drops the databases the PostgreSQL rerun of `make test` made for `dispatchd` child processes
# (one per data directory, kept across the restarts a test makes: tests/src/backend.rs,
# DATA_DIR_DATABASES), so none is left behind by a run, whether it passed or not.
set -euo pipefail
url="${1:?usage: drop-test-databases.sh DATABASE_URL}"
psql "$url" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'dispatch\_e2e\_p\_%'" |
	while read -r name; do
		psql "$url" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)"
	done
