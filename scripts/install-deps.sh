#!/usr/bin/env bash
# Installs the Debian 12 packages pglane needs to build, test and run its embedded default.
# PostgreSQL 15 is installed without letting Debian create or start its default cluster.
# Usage: scripts/install-deps.sh [extra packages...]
set -euo pipefail

PKGS=(build-essential pkg-config libuv1-dev libssl-dev libpq-dev libinih-dev libidn-dev libpcre2-dev
      libcmocka-dev libpg-query-dev libprotobuf-c-dev libsystemd-dev postgresql-client-15 postgresql-15 clang libclang-rt-14-dev
      python3-psycopg python3-asyncpg nodejs $(command -v npm >/dev/null || echo npm) openjdk-17-jdk-headless
      libpostgresql-jdbc-java golang-go golang-github-jackc-pgx-v4-dev cargo librust-tokio-postgres-dev prometheus-pgbouncer-exporter pgbouncer "$@")

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "pglane: missing Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

# Keep Debian from creating and starting a cluster on port 5432 when postgresql-15 is installed.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/pglane-no-main.conf
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; added_policy=1
fi
trap '[ $added_policy = 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# pgbouncer is installed for make bench's side-by-side runs only: it must not start at boot and take
# port 6432 (pglane's own default port) from make run.
for p in "${missing[@]}"; do
    if [ "$p" = pgbouncer ]; then
        systemctl disable pgbouncer.service >/dev/null 2>&1 || true
        update-rc.d pgbouncer disable >/dev/null 2>&1 || true
    fi
done
