"""The gateway's MQTT reading (gateway/mqttio.py): the same messages as paho's own path, in the
same order, whatever the socket's chunking; acknowledgements batched but per message; and against
a real Mosquitto, QoS 1 messages not acknowledged are delivered again, acknowledged ones never."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings, strategies as st

from gateway.mqttio import RECV_CHUNK, BufferedSocket, GatewayClient

PINGRESP = b"\xd0\x00"


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int, retain: bool, dup: bool) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)]) + remaining_length(len(body)) + body


class FakeSock:
    """A non-blocking socket that yields a byte stream cut at given points, and records sends."""

    def __init__(self, data: bytes, cuts: list[int]):
        points = sorted({c for c in cuts if 0 < c < len(data)})
        self.chunks = [data[a:b] for a, b in zip([0] + points, points + [len(data)]) if b > a]
        self.sent = bytearray()

    def recv(self, n: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        c = self.chunks[0]
        if len(c) <= n:
            self.chunks.pop(0)
            return c
        self.chunks[0] = c[n:]
        return c[:n]

    def send(self, buf: bytes) -> int:
        self.sent += buf
        return len(buf)

    def setblocking(self, flag: bool) -> None:
        pass

    def close(self) -> None:
        pass


def drain(client: mqtt.Client, sock: FakeSock) -> None:
    for _ in range(100_000):
        if not sock.chunks and not (isinstance(client._sock, BufferedSocket) and client._sock.buffered()):
            return
        assert client.loop_read() == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    raise AssertionError("the stream was never consumed")


def feed(cls: type, stream: bytes, cuts: list[int], manual_ack: bool) -> tuple[list[tuple], bytes]:
    client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv311, manual_ack=manual_ack)
    got: list[tuple] = []
    client.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload), m.qos, m.mid, m.retain, m.dup))
    sock = FakeSock(stream, cuts)
    client._sock = BufferedSocket(sock) if cls is GatewayClient else sock
    drain(client, sock)
    return got, bytes(sock.sent)


message = st.tuples(
    st.text(alphabet="abcz/-_é", min_size=1, max_size=40).map(str.encode),
    st.one_of(st.binary(max_size=200), st.binary(min_size=16_000, max_size=20_000)),
    st.sampled_from([0, 1]), st.integers(min_value=1, max_value=65535), st.booleans(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(msgs=st.lists(st.one_of(message, st.just(None)), max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=30),
       manual_ack=st.booleans())
def test_same_messages_as_paho_whatever_the_chunking(msgs, cuts, manual_ack):
    stream = b"".join(PINGRESP if m is None else publish_packet(*m) for m in msgs)
    expected = [(t.decode(), p, q, mid if q else 0, r, d) for m in msgs if m is not None
                for t, p, q, mid, r, d in [m]]
    ours, our_acks = feed(GatewayClient, stream, cuts, manual_ack)
    theirs, their_acks = feed(mqtt.Client, stream, cuts, manual_ack)
    assert ours == expected
    assert theirs == expected
    assert our_acks == their_acks  # PUBACKs at once unless manual_ack, in order
    if manual_ack:
        assert our_acks == b""


def test_a_message_larger_than_one_read():
    big = bytes(range(256)) * (RECV_CHUNK // 256 * 2 + 3)
    stream = publish_packet(b"crp/v1/DKR/m-1/current", b"x", 0, 0, False, False) \
        + publish_packet(b"big", big, 1, 7, False, False) + PINGRESP \
        + publish_packet(b"after", b"y", 1, 8, True, False)
    got, _ = feed(GatewayClient, stream, [5, 70_000], manual_ack=True)
    assert got == [("crp/v1/DKR/m-1/current", b"x", 0, 0, False, False), ("big", big, 1, 7, False, False),
                   ("after", b"y", 1, 8, True, False)]


def test_buffered_socket_keeps_socket_semantics():
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        bs = BufferedSocket(a)
        with pytest.raises(BlockingIOError):
            bs.recv(1)
        b.sendall(b"abcdef")
        time.sleep(0.05)
        assert bs.recv(1) == b"a"
        assert bs.pending() == 5
        assert bs.recv(2) == b"bc"
        assert bs.recv(10) == b"def"  # never more than buffered, no further read
        assert bs.pending() == 0
        with pytest.raises(BlockingIOError):
            bs.recv(1)
        assert bs.fileno() == a.fileno()
        b.close()
        time.sleep(0.05)
        assert bs.recv(1) == b""  # the peer closed
    finally:
        a.close()


def test_ack_many_sends_one_puback_per_message_in_order():
    client = GatewayClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv311, manual_ack=True)
    sock = FakeSock(b"", [])
    client._sock = BufferedSocket(sock)
    client.ack_many([(5, 1), (6, 0), (65535, 1), (1, 1)])
    client.loop_write()
    assert bytes(sock.sent) == b"\x40\x02\x00\x05" + b"\x40\x02\xff\xff" + b"\x40\x02\x00\x01"
    auto = GatewayClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t2", protocol=mqtt.MQTTv311)
    auto._sock = BufferedSocket(sock2 := FakeSock(b"", []))
    auto.ack_many([(5, 1)])  # without manual_ack paho acknowledged on receipt already
    auto.loop_write()
    assert bytes(sock2.sent) == b""


@pytest.mark.mqtt
def test_real_broker_redelivers_only_what_was_not_acknowledged(mosquitto):
    """QoS 1 through Mosquitto: the client acknowledges the even-numbered messages (ack_many),
    disconnects; on reconnecting (persistent session) exactly the odd ones come again."""
    topic = "crp/v1/DKR/mqttio-test/current"
    n = 400
    user, pw = mosquitto.creds("gateway")
    cid = f"mqttio-{time.time_ns()}"

    def connect(received: list, done: threading.Event, expect: int) -> GatewayClient:
        c = GatewayClient(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False,
                          protocol=mqtt.MQTTv311, manual_ack=True)
        c.username_pw_set(user, pw)
        subscribed = threading.Event()
        c.on_subscribe = lambda *_: subscribed.set()

        def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
            received.append((m.mid, bytes(m.payload)))
            if len(received) >= expect:
                done.set()

        c.on_message = on_message
        c.connect(mosquitto.host, mosquitto.port)
        c.loop_start()
        c.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        return c

    first: list = []
    done1 = threading.Event()
    c = connect(first, done1, n)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{cid}", protocol=mqtt.MQTTv311)
    pub.username_pw_set(*mosquitto.creds("sim"))
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    for i in range(n):
        pub.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(10)
    assert done1.wait(20), len(first)
    assert [p for _mid, p in first] == [f"m{i}".encode() for i in range(n)]
    c.ack_many([(mid, 1) for mid, p in first if int(p[1:]) % 2 == 0])
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    pub.disconnect()
    pub.loop_stop()

    again: list = []
    done2 = threading.Event()
    c2 = connect(again, done2, n // 2)
    try:
        assert done2.wait(20), len(again)
        time.sleep(0.5)  # nothing more comes
        assert [p for _mid, p in again] == [f"m{i}".encode() for i in range(1, n, 2)]
        c2.ack_many([(mid, 1) for mid, _p in again])
    finally:
        c2.disconnect()
        c2.loop_stop()
        c3 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True, protocol=mqtt.MQTTv311)
        c3.username_pw_set(user, pw)
        c3.connect(mosquitto.host, mosquitto.port)
        c3.disconnect()


def test_flush_from_callback_writes_only_on_the_network_thread():
    client = GatewayClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv311)
    sock = FakeSock(b"", [])
    client._sock = BufferedSocket(sock)
    client._thread = threading.Thread()  # some other thread runs the loop: nothing written here
    client.publish("crp/v1/DKR/m-1/decision", b"{}", qos=1)
    client.flush_from_callback()
    assert bytes(sock.sent) == b""
    client._thread = threading.current_thread()  # called by the loop's own thread: written at once
    client.flush_from_callback()
    assert bytes(sock.sent).startswith(b"\x32") and bytes(sock.sent).endswith(b"crp/v1/DKR/m-1/decision\x00\x01{}")
    client.disconnect()  # a DISCONNECT queued: left to the loop (it closes the connection)
    n = len(sock.sent)
    client.flush_from_callback()
    assert len(sock.sent) == n
