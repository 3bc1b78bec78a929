from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from crp_common import contract as c
from crp_common.i18n import LANGUAGES, catalog, tr

HDR = {"v": 1, "node": "node-bandsaw-1", "boot": 3, "seq": 7, "up": 120_000}
T = c.topic("DKR", "bandsaw-1", "badge")


def enc(d) -> bytes:
    return json.dumps(d).encode()


def test_valid_badge_is_normalised() -> None:
    site, machine, kind, msg = c.decode_uplink(T, enc({**HDR, "uid": "04:a1:b2:c3"}))
    assert (site, machine, kind, msg.uid) == ("DKR", "bandsaw-1", "badge", "04A1B2C3")


@pytest.mark.parametrize("topic,payload,reason", [
    ("other/v1/DKR/m/badge", enc({**HDR, "uid": "04A1B2C3"}), "unknown_topic"),
    ("crp/v1/dakar/m/badge", enc({**HDR, "uid": "04A1B2C3"}), "bad_site"),
    ("crp/v1/DKR/Bad_Machine/badge", enc({**HDR, "uid": "04A1B2C3"}), "bad_machine"),
    ("crp/v1/DKR/_tech/alerts", enc(HDR), "system_topic"),
    ("crp/v1/DKR/m/smell", enc(HDR), "unknown_kind"),
    ("crp/v1/DKR/m/decision", enc(HDR), "downlink_topic"),
    (T, b"\xff\xfe", "not_utf8"),
    (T, b"{not json", "not_json"),
    (T, b"[1,2]", "not_object"),
    (T, enc({**HDR, "v": 2, "uid": "04A1B2C3"}), "bad_version"),
    (T, enc({**HDR, "uid": "XYZ"}), "invalid"),
    (T, enc({**HDR, "uid": "04A1B2C3D"}), "invalid"),
    (T, enc({**HDR, "uid": 1234}), "invalid"),
    (T, enc({**HDR, "seq": -1, "uid": "04A1B2C3"}), "invalid"),
    (T, enc({**HDR, "seq": "7", "uid": "04A1B2C3"}), "invalid"),
    (T, enc({**HDR, "seq": 0, "uid": "04A1B2C3"}), "invalid"),
    (T, enc({**HDR, "uid": "04A1B2C3", "extra": 1}), "invalid"),
    (c.topic("DKR", "m", "temp"), enc({**HDR, "c": 900}), "invalid"),
    (c.topic("DKR", "m", "status"), enc({**HDR, "state": "offline"}), "bad_lwt"),
    (T, b"{" + b" " * c.MAX_PAYLOAD_BYTES + b"}", "too_large"),
])
def test_bad_input_has_a_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(c.ContractError) as e:
        c.decode_uplink(topic, payload)
    assert e.value.reason == reason


def test_last_will_has_seq_zero_and_no_uptime() -> None:
    _, _, _, msg = c.decode_uplink(c.topic("DKR", "m", "status"),
                                   enc({"v": 1, "node": "n", "boot": 4, "seq": 0, "state": "offline"}))
    assert msg.up is None


def test_every_kind_has_qos_and_model() -> None:
    for kind, spec in c.UPLINK.items():
        assert spec.qos in (0, 1) and spec.kind == kind
    assert c.UPLINK["status"].retain and not c.UPLINK["badge"].retain
    assert not any(s.retain for s in c.DOWNLINK.values())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(list(c.UPLINK)))
def test_arbitrary_bytes_never_crash(payload: bytes, kind: str) -> None:
    try:
        c.decode_uplink(c.topic("DKR", "m", kind), payload)
    except c.ContractError as e:
        assert e.reason


def test_catalogs_have_the_same_keys_and_every_reason() -> None:
    keys = [set(catalog(lang)) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys)
    for r in c.DenyReason:
        assert f"deny.{r}" in keys[0]
    for r in c.EndReason:
        assert f"end.{r}" in keys[0]
    assert tr("deny.credit_limit", "en-US,en;q=0.8") == "Credit limit reached"
    assert tr("deny.credit_limit", None) == "Limite de crédit atteinte"
