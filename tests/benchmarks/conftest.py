"""The benchmark smoke tests start their own private Mosquitto (the benchmarks' harness);
without Mosquitto and its clients they skip locally and fail in CI."""

from __future__ import annotations

import shutil

import pytest

from crp_cli.broker import find_mosquitto
from tests.conftest import need_service


@pytest.fixture
def mqtt_tools() -> None:
    if find_mosquitto() is None:
        need_service("mosquitto is not installed (apt-get install mosquitto)")
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        need_service("mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)")
