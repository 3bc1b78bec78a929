"""The embedded demo broker (amqtt): used by `crp demo` only when Mosquitto is not installed.

amqtt speaks MQTT 3.1.1 only and runs here without authentication and without topic checks
(so the metering plugs' own topics, tele/..., shellies/..., <prefix>/..., pass like crp/v1/...;
tests/crp_cli/test_demo.py plays plugs through it): a demo default, unsafe on a real workshop
network. Production runs Mosquitto with the generated password file
and ACLs (see docs/protocol.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{args.host}:{args.port}"}},
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }

    async def run() -> None:
        broker = Broker(config)
        await broker.start()
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
