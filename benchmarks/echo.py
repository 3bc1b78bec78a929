"""The latency floor: a paho client that answers every request with its own payload.

    python -m benchmarks.echo HOST PORT USER PASSWORD REQUEST_TOPIC REPLY_TOPIC NODELAY(0|1)

Same shape as the gateway's badge path (subscribe QoS 1, publish the answer QoS 1) without any
work in between. Prints ``ready`` once subscribed; runs until stdin closes."""

from __future__ import annotations

import sys
from typing import Any

import paho.mqtt.client as mqtt

from .harness import nodelay


def main(argv: list[str]) -> int:
    host, port, user, password, req, rep, nd = argv[:7]
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"echo-{req.replace('/', '-')}",
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    if nd == "1":
        c.on_socket_open = lambda _c, _ud, sock: nodelay(sock)
    c.on_connect = lambda client, *_: client.subscribe(req, qos=1)
    c.on_subscribe = lambda *_: print("ready", flush=True)

    def on_message(client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        client.publish(rep, msg.payload, qos=1)

    c.on_message = on_message
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    sys.stdin.read()  # until the harness closes our stdin
    c.disconnect()
    c.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
