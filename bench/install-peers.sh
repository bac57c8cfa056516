#!/usr/bin/env bash
# Installs the peers the benchmarks compare against, from Debian's packages, when missing:
# PostGIS for the machine's PostgreSQL. Redis and PostgreSQL themselves run on these machines.
set -euo pipefail
pg_version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
if [ -n "$pg_version" ] && ! ls /usr/share/postgresql/"$pg_version"/extension/postgis.control >/dev/null 2>&1; then
    echo "installing PostGIS for PostgreSQL $pg_version" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -q "postgresql-$pg_version-postgis-3" >/dev/null
fi
