#!/bin/sh
# Creates the two databases of the compose stack: `optuna` (the studies) and `mlflow` (MLflow's
# backend store). The postgres image runs this once, when it initialises an empty data volume,
# as $POSTGRES_USER over the local socket, before the server listens on TCP (so the healthcheck,
# which asks over TCP, turns healthy only once both databases exist). Safe to run again by hand:
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-create-databases.sh
set -eu
for db in optuna mlflow; do
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres --set db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
