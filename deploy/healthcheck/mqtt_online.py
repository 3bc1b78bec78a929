"""Container healthcheck: exit 0 when a retained status message on TOPIC says "online".

    python /opt/crp/healthcheck/mqtt_online.py 'crp/v1/DKR/_gw/gw-dkr-1/status'

Connects with the container's own CRP_MQTT_HOST/PORT/USERNAME/PASSWORD (a separate client id,
so the service's session is untouched). Used for the gateway (its status topic) and the
simulator (any node status of the site).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading

import paho.mqtt.client as mqtt

WAIT_S = 5.0


def main(topic: str) -> int:
    online = threading.Event()

    def on_connect(client, _ud, _flags, rc, _props=None):
        client.subscribe(topic, qos=0)

    def on_message(_c, _ud, msg):
        try:
            if json.loads(msg.payload).get("state") == "online":
                online.set()
        except (ValueError, AttributeError):
            pass

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"health-{secrets.token_hex(4)}",
                    protocol=mqtt.MQTTv311)
    if os.environ.get("CRP_MQTT_USERNAME"):
        c.username_pw_set(os.environ["CRP_MQTT_USERNAME"], os.environ.get("CRP_MQTT_PASSWORD", ""))
    c.on_connect = on_connect
    c.on_message = on_message
    try:
        c.connect(os.environ.get("CRP_MQTT_HOST", "127.0.0.1"), int(os.environ.get("CRP_MQTT_PORT", "1883")), 10)
    except OSError as e:
        print(f"broker unreachable: {e}", file=sys.stderr)
        return 1
    c.loop_start()
    ok = online.wait(WAIT_S)
    c.loop_stop()
    c.disconnect()
    if not ok:
        print(f"no 'online' status on {topic}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: mqtt_online.py TOPIC", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
