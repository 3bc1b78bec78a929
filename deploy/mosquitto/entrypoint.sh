#!/bin/sh
# Build Mosquitto's password file from the passwords in .env at every start, then run the
# broker. The password file lives in the data volume, never in the repository.
set -eu

: "${MQTT_GATEWAY_PASSWORD:?set MQTT_GATEWAY_PASSWORD in .env}"
: "${MQTT_SIM_PASSWORD:?set MQTT_SIM_PASSWORD in .env}"
: "${MQTT_HEALTH_PASSWORD:?set MQTT_HEALTH_PASSWORD in .env}"

PASSWD=/mosquitto/data/passwd
mkdir -p /mosquitto/data
umask 077
: > "$PASSWD.new"
mosquitto_passwd -b "$PASSWD.new" gateway "$MQTT_GATEWAY_PASSWORD"
mosquitto_passwd -b "$PASSWD.new" simulator "$MQTT_SIM_PASSWORD"
mosquitto_passwd -b "$PASSWD.new" health "$MQTT_HEALTH_PASSWORD"
mv "$PASSWD.new" "$PASSWD"
chown -R mosquitto:mosquitto /mosquitto/data

exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
