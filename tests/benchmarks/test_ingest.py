"""Smoke test of the ingest benchmark with tiny sizes: the counting of loss and duplicates is
checked against a stream with known gaps and repeats. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import ingest
from benchmarks.harness import start_broker

pytestmark = pytest.mark.mqtt


@pytest.fixture
def env(mqtt_tools, tmp_path: Path):
    e = start_broker(tmp_path / "broker")
    yield e
    e.broker.stop()


@pytest.fixture(autouse=True)
def short_waits(monkeypatch) -> None:
    monkeypatch.setattr(ingest, "QUIET_S", 1.0)
    monkeypatch.setattr(ingest, "WARM_COUNT", 20)


def _drop_and_repeat(batch: ingest.Batch, drop: set[int], repeat: set[int]) -> None:
    """Rewrite the first publisher's file: lines at ``drop`` go missing, ``repeat`` are sent twice."""
    _topic, path = batch.files[0]
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if i in drop:
            continue
        out.append(line)
        if i in repeat:
            out.append(line)
    path.write_text("\n".join(out) + "\n")


@pytest.mark.parametrize("qos", [0, 1])
def test_gateway_counts_known_losses_and_repeats(env, tmp_path: Path, qos: int) -> None:
    batch = ingest.Batch(tmp_path, f"lossq{qos}", 60).write()
    _drop_and_repeat(batch, drop={3, 10, 11}, repeat={5, 20})
    trial = ingest.trial_gateway(env, tmp_path, batch, qos, gateway_id=f"gw-loss-q{qos}")
    assert trial.sent == 60
    assert trial.received == 57
    assert trial.lost == 3
    assert trial.duplicated == 0  # the spool holds each key once...
    assert trial.redelivered == 2  # ...and counted the two repeats it refused
    assert trial.dead_letters == 0


def test_reference_subscribers_count_what_arrives(env, tmp_path: Path) -> None:
    batch = ingest.Batch(tmp_path, "refs", 40).write()
    _drop_and_repeat(batch, drop={1, 7, 9}, repeat={2})
    paho = ingest.trial_paho(env, tmp_path, batch, 1)
    msub = ingest.trial_mosquitto_sub(env, tmp_path, batch, 1)
    assert paho.received == 38  # 40 - 3 dropped + 1 repeated: the references count arrivals
    assert msub.received == 38


def test_bench_ingest_returns_every_figure(mqtt_tools, tmp_path: Path) -> None:
    figs, raw = ingest.bench_ingest(n=200, n_qos1=100, rounds=1, workdir=tmp_path)
    names = [f.name for f in figs]
    for qos in (0, 1):
        for what in ("gateway (committed to spool)", "gateway / bare paho", "gateway / mosquitto_sub",
                     "gateway lost", "gateway duplicated"):
            assert f"QoS {qos} {what}" in names
    trials = raw["trials"]
    assert sorted({(t["subscriber"], t["qos"]) for t in trials}) == sorted(
        (s, q) for s in ("gateway", "mosquitto_sub", "paho") for q in (0, 1))
    gw = [t for t in trials if t["subscriber"] == "gateway"]
    assert [t["lost"] for t in gw] == [0, 0]
    assert [t["duplicated"] for t in gw] == [0, 0]
