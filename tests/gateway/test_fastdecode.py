"""The telemetry fast path accepts only what the contract accepts, with the same values and the
same stored body text; everything else goes to the contract's own decoder."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import given, settings, strategies as st

from crp_common.contract import UPLINK, ContractError, body_of, decode_uplink
from gateway.fastdecode import FIELDS, HEADER, FastDecoder
from gateway.spool import dumps

FAST_KINDS = sorted(FIELDS)
NODE = "node-bandsaw-1"


def contract(topic: str, payload: bytes):
    try:
        return decode_uplink(topic, payload)
    except ContractError:
        return None


def assert_same(topic: str, payload: bytes) -> bool:
    """Returns whether the fast path accepted; fails if it disagrees with the contract."""
    fast = FastDecoder().decode(topic, payload)
    ref = contract(topic, payload)
    if fast is None:
        return False
    assert ref is not None, f"fast path accepted what the contract refuses: {topic} {payload!r}"
    site, machine, kind, h, body, text = fast
    r_site, r_machine, r_kind, m = ref
    assert (site, machine, kind) == (r_site, r_machine, r_kind)
    assert (h.node, h.boot, h.seq, h.up, h.ts) == (m.node, m.boot, m.seq, m.up, m.ts)
    assert body == body_of(m)
    assert [type(v) for v in body.values()] == [type(v) for v in body_of(m).values()]
    assert text == dumps(body_of(m))
    return True


def test_field_table_follows_the_models():
    for kind, fields in FIELDS.items():
        model = UPLINK[kind].model
        names = [n for n in model.model_fields if n not in HEADER]
        assert [f[0] for f in fields] == names, kind
        for name, typ, required, lo, hi in fields:
            info = model.model_fields[name]
            assert info.is_required() == required, (kind, name)
            ann = info.annotation
            base = {float: "float", bool: "bool", int: "int"}
            if typing.get_origin(ann) is typing.Union:
                (inner,) = [a for a in typing.get_args(ann) if a is not type(None)]
                ann = typing.get_args(inner)[0] if typing.get_args(inner) else inner
            assert base[ann] == typ, (kind, name)
            # the bounds: the model refuses just outside them and takes them
            if lo is not None:
                payload = {"v": 1, "node": NODE, "boot": 1, "seq": 1, "up": 1}
                for other, t2, req2, lo2, _hi2 in fields:
                    if req2 and other != name:
                        payload[other] = True if t2 == "bool" else lo2
                for value, ok in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
                    payload[name] = value
                    accepted = contract(f"crp/v1/DKR/m-1/{kind}", json.dumps(payload).encode()) is not None
                    assert accepted == ok, (kind, name, value)


GOOD = {
    "current": {"amps": 5.25}, "temp": {"c": 21.5}, "vib": {"rms": 3.0}, "energy": {"wh": 1234.5},
    "hb": {"relay": True, "motor": False, "rssi": -60},
}


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_plain_messages_take_the_fast_path(kind):
    payload = {"v": 1, "node": NODE, "boot": 3, "seq": 17, "up": 123456, **GOOD[kind]}
    assert assert_same(f"crp/v1/DKR/bandsaw-1/{kind}", json.dumps(payload).encode())
    payload["ts"] = 1_790_000_000.25
    assert assert_same(f"crp/v1/DKR/bandsaw-1/{kind}", json.dumps(payload).encode())


@pytest.mark.parametrize("payload", [
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":true}',  # bool for a number
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":"5"}',  # string for a number
    b'{"v":1,"node":"n-1","boot":1,"seq":1.0,"up":1,"amps":5}',  # float for a strict int
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":NaN}',
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":1e400}',
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":null}',  # required, null
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1}',  # required, missing
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5,"x":1}',  # extra field
    b'{"v":1,"node":"n-1","boot":1,"seq":0,"up":1,"amps":5}',  # seq 0: the Last Will's
    b'{"v":true,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5}',
    b'{"v":2,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5}',
    b'{"v":1,"node":"n-1\\n","boot":1,"seq":1,"up":1,"amps":5}',  # trailing newline in an id
    b'{"v":1,"node":"N-1","boot":1,"seq":1,"up":1,"amps":5}',
    b'{"v":1,"node":"n-1","boot":4294967296,"seq":1,"up":1,"amps":5}',
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":99999999999999999999999,"amps":5}',
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":-1,"amps":5}',
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5,"ts":-1}',
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5,"ts":true}',
    b'\xef\xbb\xbf{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5}',  # BOM
    b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5}\xff',
    b'[1,2]',
    b'',
])
def test_anything_unusual_goes_to_the_contract(payload):
    assert FastDecoder().decode("crp/v1/DKR/bandsaw-1/current", payload) is None
    assert_same("crp/v1/DKR/bandsaw-1/current", payload)


def test_other_topics_and_kinds_go_to_the_contract():
    f = FastDecoder()
    ok = b'{"v":1,"node":"n-1","boot":1,"seq":1,"up":1,"amps":5}'
    assert f.decode("crp/v1/DKR/bandsaw-1/current", ok) is not None
    for topic in ("crp/v1/dkr/bandsaw-1/current", "crp/v1/DKR/_gw/current", "crp/v1/DKR/Bad/current",
                  "crp/v1/DKR/bandsaw-1/badge", "crp/v1/DKR/bandsaw-1/smell", "crp/v2/DKR/bandsaw-1/current",
                  "crp/v1/DKR/bandsaw-1/current/x"):
        assert f.decode(topic, ok) is None, topic
    assert f.decode("crp/v1/DKR/bandsaw-1/current", ok[:-1] + b' ' * 5000 + b'}') is None  # too large


scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
number = st.one_of(st.floats(min_value=-100, max_value=1100), st.integers(min_value=-200, max_value=1200),
                   st.floats(min_value=1e11, max_value=2e12))
fields = {
    "v": st.one_of(st.just(1), scalar),
    "node": st.one_of(st.sampled_from([NODE, "n", "a" * 48, "a" * 49, "-n", "n_1", "é"]), scalar),
    "boot": st.one_of(st.integers(min_value=0, max_value=2**32), scalar),
    "seq": st.one_of(st.integers(min_value=0, max_value=2**32), scalar),
    "up": st.one_of(st.integers(min_value=0, max_value=2**53 + 1), scalar),
    "ts": st.one_of(st.floats(min_value=0, max_value=1.1e11), scalar),
    "amps": st.one_of(number, scalar), "c": st.one_of(number, scalar), "rms": st.one_of(number, scalar),
    "wh": st.one_of(number, scalar), "relay": scalar, "motor": scalar,
    "rssi": st.one_of(st.integers(min_value=-130, max_value=3), st.floats(min_value=-130, max_value=3), scalar),
    "extra": scalar,
}


HEADER_GOOD = {"v": 1, "node": NODE, "boot": 1, "seq": 5, "up": 100}
GOOD_VALUE = {"amps": number, "c": number, "rms": number, "wh": number, "ts": st.floats(min_value=0, max_value=1.1e11),
              "relay": st.booleans(), "motor": st.booleans(), "rssi": st.integers(min_value=-130, max_value=3)}


@st.composite
def messages(draw):
    """Mostly well-formed messages of the fast kinds, each field now and then odd or missing,
    now and then a field too many."""
    def odd() -> bool:
        return draw(st.integers(min_value=0, max_value=15)) == 0

    kind = draw(st.sampled_from(FAST_KINDS))
    data = {}
    for name, good in HEADER_GOOD.items():
        if not odd():
            data[name] = good
        elif draw(st.booleans()):
            data[name] = draw(fields[name])
    if draw(st.booleans()):
        data["ts"] = draw(fields["ts"]) if odd() else draw(GOOD_VALUE["ts"])
    for name, _typ, required, _lo, _hi in FIELDS[kind]:
        if required or draw(st.booleans()):
            if not odd():
                data[name] = draw(GOOD_VALUE[name])
            elif draw(st.booleans()):
                data[name] = draw(fields[name])
    if odd():
        data[draw(st.sampled_from(["extra", "amps", "relay", "uid"]))] = draw(scalar)
    return kind, data


@settings(max_examples=4000, deadline=None)
@given(msg=messages(), spaced=st.booleans())
def test_generated_messages_agree_with_the_contract(msg, spaced):
    kind, data = msg
    payload = json.dumps(data).encode()
    if spaced:  # the same object, spaced and in another key order
        payload = json.dumps(dict(reversed(list(data.items()))), indent=1).encode()
    assert_same(f"crp/v1/DKR/bandsaw-1/{kind}", payload)


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=120))
def test_random_bytes_agree_with_the_contract(payload):
    assert_same("crp/v1/DKR/bandsaw-1/current", payload)
