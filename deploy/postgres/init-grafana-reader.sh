#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume: a read-only role
# for Grafana. The tables are created later by the server's migrations (as POSTGRES_USER), so
# default privileges grant SELECT on them as they appear.
set -euo pipefail

: "${GRAFANA_PG_USER:?set GRAFANA_PG_USER in .env}"
: "${GRAFANA_PG_PASSWORD:?set GRAFANA_PG_PASSWORD in .env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader="$GRAFANA_PG_USER" -v reader_pw="$GRAFANA_PG_PASSWORD" -v owner="$POSTGRES_USER" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_pw';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
