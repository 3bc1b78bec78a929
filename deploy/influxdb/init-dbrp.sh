#!/bin/bash
# Runs once, when the influxdb container initialises an empty data volume (after the
# DOCKER_INFLUXDB_INIT_* setup has created the org, the bucket and the admin token).
#  1. DBRP mapping: database CRP_INFLUX_DB / retention policy "autogen" -> the bucket, so
#     InfluxQL (the dashboards' query language, portable to 1.x and 3.x) works on 2.x.
#  2. A read-only v1 user for Grafana on that bucket (least privilege: not the admin token).
set -euo pipefail

: "${CRP_INFLUX_DB:?set CRP_INFLUX_DB in .env}"
: "${INFLUX_GRAFANA_USERNAME:?set INFLUX_GRAFANA_USERNAME in .env}"
: "${INFLUX_GRAFANA_PASSWORD:?set INFLUX_GRAFANA_PASSWORD in .env}"

org="${DOCKER_INFLUXDB_INIT_ORG}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [ -z "$bucket_id" ]; then
  bucket_id="$(influx bucket list --org "$org" --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)"
fi

influx v1 dbrp create --org "$org" --bucket-id "$bucket_id" --db "$CRP_INFLUX_DB" --rp autogen --default
influx v1 auth create --org "$org" --read-bucket "$bucket_id" \
  --username "$INFLUX_GRAFANA_USERNAME" --password "$INFLUX_GRAFANA_PASSWORD"
