"""The reference subscriber: bare paho that only parses each message's JSON.

    python -m benchmarks.drain HOST PORT USER PASSWORD FILTER QOS COUNT [WARM_TOPIC WARM_COUNT [QUIET_S]]

Prints ``ready`` once subscribed, ``warm`` once WARM_COUNT messages arrived on WARM_TOPIC (not
counted), then one JSON line: ``{"received", "first", "last"}`` (wall-clock seconds) after COUNT
messages or QUIET_S without any."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

QUIET_S = 3.0
DEADLINE_S = 600.0


def main(argv: list[str]) -> int:
    host, port, user, password, flt, qos, count = argv[:7]
    warm_topic, warm_count = (argv[7], int(argv[8])) if len(argv) > 8 else ("", 0)
    quiet_s = float(argv[9]) if len(argv) > 9 else QUIET_S
    count_i = int(count)
    st: dict[str, Any] = {"n": 0, "warm": 0, "first": None, "last": None, "parsed": 0}
    done = threading.Event()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"drain-{time.time_ns()}", protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)

    def on_connect(client: mqtt.Client, _ud: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        client.subscribe(flt, qos=int(qos))

    def on_subscribe(*_: Any) -> None:
        print("ready", flush=True)

    def on_message(_c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        data = json.loads(msg.payload)
        if warm_count and msg.topic == warm_topic:
            st["warm"] += 1
            if st["warm"] == warm_count:
                print("warm", flush=True)
            return
        st["parsed"] += isinstance(data, dict)
        now = time.time()
        if st["first"] is None:
            st["first"] = now
        st["last"] = now
        st["n"] += 1
        if st["n"] >= count_i:
            done.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    start = time.monotonic()
    while not done.wait(0.2):
        last = st["last"]
        if last is not None and time.time() - last > quiet_s:
            break
        if time.monotonic() - start > DEADLINE_S:
            break
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"received": st["n"], "first": st["first"], "last": st["last"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
