"""The gateway's MQTT client: paho, with a leaner path for the incoming message stream.

Stock paho reads every incoming packet with at least three ``recv()`` calls (the command byte,
the remaining-length bytes one by one, then the rest), goes back to ``select()`` between
packets, and builds each message with a lock and a condition variable it never uses for an
incoming message. At thousands of telemetry messages per second that was most of the network
thread, and each system call released the GIL to the writer in the middle of a message. Here:

- :class:`BufferedSocket` serves paho's small reads from one large ``recv()`` (it keeps socket
  semantics: ``BlockingIOError`` when nothing is available, ``b""`` when the broker closed, and
  ``pending()``, which paho's loop already honours for TLS sockets, so nothing buffered waits on
  ``select()``);
- :class:`GatewayClient` decodes the complete QoS 0/1 PUBLISH packets already buffered and hands
  them to ``on_message`` in order, without going back to ``select()``, stopping as soon as
  something waits to be sent; every other packet goes through paho's own code;
- :meth:`GatewayClient.ack_many` sends a committed batch's PUBACKs as one write;
- :meth:`GatewayClient.flush_from_callback` puts a badge decision on the wire from inside
  ``on_message``, before the message's other work wakes any other thread.

tests/gateway/test_mqttio.py checks the messages against paho's own path on generated streams cut
at random points, and the acknowledgements against a real Mosquitto."""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTErrorCode, MQTTv5

_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS
_AGAIN = MQTTErrorCode.MQTT_ERR_AGAIN
_CONN_LOST = MQTTErrorCode.MQTT_ERR_CONN_LOST
_PUBLISH = 0x30
_PUBACK = 0x40
_DISCONNECT = 0xE0
_PUBACK_PACKET = struct.Struct("!BBH")

RECV_CHUNK = 256 * 1024
# Packets handled per select() at most, so keepalive and writes keep their turn.
DRAIN_MAX_PACKETS = 1000


class BufferedSocket:
    """A connected socket whose ``recv(n)`` is served from a buffer filled RECV_CHUNK at a time.
    Everything else is the wrapped socket's (``fileno`` for select, ``send``, ``close``...)."""

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock: Any):
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            data = self._sock.recv(RECV_CHUNK if n < RECV_CHUNK else n)
            if len(data) <= n:  # EOF (b""), or exactly what was asked: nothing to keep
                return data
            self._buf, buf, pos = data, data, 0
        end = pos + n
        if end >= len(buf):
            self._buf, self._pos = b"", 0
            return buf[pos:] if pos else buf
        self._pos = end
        return buf[pos:end]

    def fill(self) -> int:
        """One ``recv()`` into the (empty) buffer: the bytes now buffered, 0 when the peer closed."""
        data = self._sock.recv(RECV_CHUNK)
        self._buf, self._pos = data, 0
        return len(data)

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def pending(self) -> int:
        """Bytes readable without a system call (paho's loop skips its select() wait then)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"BufferedSocket({self._sock!r}, buffered={self.buffered()})"


class IncomingMessage(mqtt.MQTTMessage):
    """An incoming PUBLISH as paho gives it, without the ``MQTTMessageInfo`` (a lock and a
    condition variable per message, which only outgoing messages use): ``info`` is None."""

    __slots__ = ()

    def __init__(self, mid: int, topic: bytes, payload: bytes, qos: int, dup: bool, retain: bool, ts: float):
        self.timestamp = ts
        self.state = mqtt.mqtt_ms_invalid
        self.dup = dup
        self.mid = mid
        self._topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.info = None  # type: ignore[assignment]
        self.properties = None


class GatewayClient(mqtt.Client):
    """paho's client over a :class:`BufferedSocket` (TCP and TLS; websockets are left as they are).

    Complete QoS 0 and QoS 1 PUBLISH packets found in the buffer (MQTT 3.1.1) are decoded here
    and handed to ``on_message`` the way paho does it (same message fields; a QoS 1 message is
    acknowledged at once unless ``manual_ack``); every other packet, a packet that is not all
    buffered yet, anything malformed, MQTT 5, and any client with debug logging or topic
    callbacks take paho's own path."""

    _topic_callbacks = False
    # The paho internals this class builds on (paho-mqtt 2.x); with a paho that lacks any of
    # them, it behaves exactly as paho's own client.
    _PAHO_INTERNALS = ("_sock", "_in_packet", "_protocol", "_out_packet", "_msgtime_mutex", "_last_bytes_received",
                       "_in_callback_mutex", "_userdata", "_thread", "_manual_ack", "_logger", "_transport")
    _PAHO_METHODS = ("_create_socket", "_packet_read", "_packet_queue", "_packet_write", "_send_puback", "_easy_log")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._buffered = all(hasattr(self, a) for a in self._PAHO_INTERNALS + self._PAHO_METHODS)

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._topic_callbacks = True
        super().message_callback_add(sub, callback)

    def ack_many(self, acks: Iterable[tuple[int, int]]) -> None:
        """``ack(mid, qos)`` for each, in order; the QoS 1 acknowledgements go out as one write
        (one queued buffer holding the PUBACK packets back to back, one wake-up of the network
        thread) instead of one of each per message."""
        if not self._buffered:
            for mid, qos in acks:
                self.ack(mid, qos)
            return
        if not self._manual_ack:
            return
        pack = _PUBACK_PACKET.pack
        pubacks = []
        for mid, qos in acks:
            if qos == 1:
                pubacks.append(pack(_PUBACK, 2, mid))
            elif qos == 2:
                if pubacks:
                    self._packet_queue(_PUBACK, b"".join(pubacks), 0, 1)
                    pubacks = []
                self.ack(mid, qos)
        if pubacks:
            self._packet_queue(_PUBACK, b"".join(pubacks), 0, 1)

    def flush_from_callback(self) -> None:
        """Write what is queued, now, when called by the network thread (from ``on_message``):
        a badge decision then leaves before the message's other work wakes any other thread.
        Elsewhere, or when writing could run a user callback from inside this one (``on_publish``
        set, a DISCONNECT queued), it does nothing: the loop writes on its next turn as usual."""
        if not self._buffered:
            return
        thread = self._thread
        if thread is None or thread is not threading.current_thread() or self._sock is None:
            return
        if self.on_publish is not None or any((p["command"] & 0xF0) == _DISCONNECT for p in self._out_packet):
            return
        self._packet_write()

    def _packet_read(self) -> MQTTErrorCode:
        sock = self._sock
        if (self._in_packet["command"] != 0 or not isinstance(sock, BufferedSocket) or self._protocol == MQTTv5
                or self._topic_callbacks or self.on_log is not None
                or (self._logger is not None and self._logger.isEnabledFor(logging.DEBUG))):
            return super()._packet_read()
        if sock._pos >= len(sock._buf):
            try:
                if sock.fill() == 0:
                    return _CONN_LOST
            except BlockingIOError:
                return _AGAIN
            except OSError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return _CONN_LOST
        if self._read_publishes(sock):
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            return _SUCCESS
        return super()._packet_read()

    def _read_publishes(self, sock: BufferedSocket) -> int:
        """Hand every complete plain PUBLISH at the head of the buffer to ``on_message``; stop at
        anything else (left for paho), when something waits to be sent, or after
        DRAIN_MAX_PACKETS. Returns how many were handled."""
        buf, pos, end = sock._buf, sock._pos, len(sock._buf)
        handled = 0
        on_message = self.on_message
        auto_ack = not self._manual_ack
        now = mqtt.time_func()
        try:
            while pos < end and handled < DRAIN_MAX_PACKETS:
                hdr = buf[pos]
                qos = (hdr >> 1) & 3
                if hdr & 0xF0 != _PUBLISH or qos > 1:
                    break
                i, length, shift = pos + 1, 0, 0
                while True:  # remaining length: 1 to 4 bytes, 7 bits each
                    if i >= end or shift > 21:
                        return handled
                    b = buf[i]
                    i += 1
                    length |= (b & 127) << shift
                    shift += 7
                    if b < 128:
                        break
                stop = i + length
                if stop > end or length < 2:
                    break
                p = i + 2 + ((buf[i] << 8) | buf[i + 1])
                if p == i + 2 or p + (2 if qos else 0) > stop:  # empty topic or truncated: paho says why
                    break
                topic = buf[i + 2:p]
                mid = 0
                if qos:
                    mid = (buf[p] << 8) | buf[p + 1]
                    p += 2
                msg = IncomingMessage(mid, topic, buf[p:stop], qos, bool(hdr & 0x08), bool(hdr & 0x01), now)
                pos = sock._pos = stop
                handled += 1
                if on_message is not None:
                    with self._in_callback_mutex:
                        try:
                            on_message(self, self._userdata, msg)
                        except Exception as err:
                            self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                            if not self.suppress_exceptions:
                                raise
                if qos and auto_ack:
                    self._send_puback(mid)
                if self._out_packet or self._sock is not sock:
                    break  # a decision or an acknowledgement to send first; or the connection went
        finally:
            if sock._pos >= len(sock._buf):
                sock._buf, sock._pos = b"", 0
        return handled

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if not self._buffered or self._transport == "websockets":
            return sock
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return rc
        n = DRAIN_MAX_PACKETS
        # Every complete packet already buffered, unless something waits to be written.
        while rc == _SUCCESS and n and sock._pos < len(sock._buf) \
                and not self._out_packet and self._sock is sock:
            rc = super().loop_read(max_packets)
            n -= 1
        return rc
