#!/usr/bin/env bash
# Install PostgreSQL 15 + pgvector and start it on 127.0.0.1:${RAG_PG_PORT:-5432} with a `rag` role and database.
# Debian bookworm ships no pgvector package: it is built from Debian trixie's source package (~45 s, once).
# Idempotent: re-running only starts the cluster if it is down. Prints the connection string for PG_CONN_STR.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${RAG_PG_PORT:-5432}"
PGVER=15
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

bash scripts/apt-install.sh scripts/apt-packages-postgres.txt

if [ ! -f "/usr/share/postgresql/$PGVER/extension/vector.control" ]; then
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  mkdir -p "$W/parts" "$W/lists/partial" "$W/cache/archives/partial"
  # reuse the Debian mirror apt already uses
  URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$URI" ] || URI=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$URI" > "$W/parts/src.sources"
  APTO=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$W/parts" -o "Dir::State::Lists=$W/lists"
        -o "Dir::Cache=$W/cache")
  $SUDO apt-get "${APTO[@]}" update -q
  (cd "$W" && chmod 777 "$W" && apt-get "${APTO[@]}" source -q pgvector >/dev/null \
     && cd pgvector-*/ && make -s -j2 PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" \
     && $SUDO make -s install PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config")
fi

if ! pg_lsclusters -h | awk -v v=$PGVER '$1==v && $2=="main"' | grep -q .; then
  $SUDO pg_createcluster $PGVER main --port "$PORT" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
fi
if ! pg_lsclusters -h | awk -v v=$PGVER '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  $SUDO pg_ctlcluster $PGVER main start -o "-c listen_addresses=127.0.0.1 -c port=$PORT"
fi

psql_su() { $SUDO runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
[ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname='rag'")" = 1 ] || \
  psql_su -c "CREATE ROLE rag LOGIN PASSWORD 'rag'"
[ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname='rag'")" = 1 ] || psql_su -c "CREATE DATABASE rag OWNER rag"
psql_su -d rag -c "CREATE EXTENSION IF NOT EXISTS vector"
echo "postgresql://rag:rag@127.0.0.1:$PORT/rag"
