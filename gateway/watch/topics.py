"""Topic watches: a short-lived MQTT client of its own on the gateway's broker, subscribed to
one filter for a few minutes, that shows what arrives there and which profile, if any, would
take it (``gateway.watch.trial``). It answers what nothing else does: a payload on a topic
no profile subscribes to reaches no part of the gateway and leaves no trace anywhere.

Bounded: at most ``MAX_WATCHES`` at once (each is a broker connection) and one per person,
``MAX_DURATION_S`` long and ``MAX_MESSAGES`` messages at most, ``KEEP_BYTES`` of each payload
kept. What a watch saw is in memory only, readable by its owner while it runs and for
``KEEP_AFTER_S`` after it ended; then it is forgotten. Nothing is written to the database or
the log. The client uses the gateway's broker account (credentials, TLS) with its own client
id and a clean session, QoS 0: it takes nothing from the gateway's own session.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config.settings import MqttConfig
from gateway.events import utcnow
from gateway.ingest.mqtt import use_broker_account
from gateway.watch.trial import Verdict

log = logging.getLogger(__name__)

MAX_WATCHES = 3
MAX_DURATION_S = 300
DEFAULT_DURATION_S = 120
MAX_MESSAGES = 500
DEFAULT_MESSAGES = 100
KEEP_BYTES = 4096
KEEP_AFTER_S = 300
FILTER_MAX = 256

Judge = Callable[[str, bytes, datetime], Verdict]
State = Literal["connecting", "watching", "ended"]


class WatchRefused(Exception):
    """A watch that may not start: ``status`` says how the API answers (409, 422, 429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def filter_problem(value: str) -> str | None:
    """Why ``value`` is not a topic filter a watch may take (None: it is one)."""
    if not value or len(value) > FILTER_MAX:
        return f"a filter is 1 to {FILTER_MAX} characters"
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "a filter has no control characters"
    if value.startswith("$"):
        return "the broker's own topics ($SYS, …) are not watched"
    levels = value.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "# stands alone as the last level (a/#)"
        if "+" in level and level != "+":
            return "+ stands alone as a whole level (a/+/b)"
    return None


@dataclass(slots=True)
class Seen:
    """One message a watch received."""

    at: datetime
    topic: str
    size: int
    payload: bytes  # the first KEEP_BYTES
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        text = self.payload.decode("utf-8", errors="backslashreplace")
        return {
            "at": self.at.isoformat(),
            "topic": self.topic,
            "size": self.size,
            "payload": text,
            "truncated": self.size > len(self.payload),
            "verdict": self.verdict.to_json(),
        }


@dataclass
class TopicWatch:
    id: str
    owner: str
    filter: str
    started_at: datetime
    ends_at: datetime
    max_messages: int
    state: State = "connecting"
    end_reason: str | None = None  # time | messages | stopped | broker: …
    ended_at: datetime | None = None
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _client: mqtt.Client | None = field(default=None, repr=False)
    _timer: threading.Timer | None = field(default=None, repr=False)

    def to_json(self, *, since: int = 0) -> dict[str, Any]:
        """The watch and what it saw from message ``since`` on (the page asks for the new)."""
        with self._lock:
            seen = [s.to_json() for s in self.seen[since:]]
            count = len(self.seen)
        return {
            "id": self.id,
            "filter": self.filter,
            "state": self.state,
            "end_reason": self.end_reason,
            "started_at": self.started_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "max_messages": self.max_messages,
            "count": count,
            "since": since,
            "messages": seen,
        }


class TopicWatches:
    """The running gateway's watches. ``connect`` makes a watch's client (tests give their
    own); ``judge`` says what the gateway would make of a message."""

    def __init__(
        self,
        mqtt_config: MqttConfig,
        judge: Judge,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_watches: int = MAX_WATCHES,
    ) -> None:
        self.config = mqtt_config
        self.judge = judge
        self.clock = clock
        self.max_watches = max_watches
        self._watches: dict[str, TopicWatch] = {}
        self._lock = threading.Lock()

    # -- the API's calls (event loop; nothing here blocks on the network) -----------------
    def start(
        self,
        owner: str,
        topic_filter: str,
        *,
        duration_s: float = DEFAULT_DURATION_S,
        max_messages: int = DEFAULT_MESSAGES,
    ) -> TopicWatch:
        problem = filter_problem(topic_filter)
        if problem is not None:
            raise WatchRefused(422, problem)
        now = self.clock()
        with self._lock:
            self._forget_old(now)
            running = [w for w in self._watches.values() if w.state != "ended"]
            if any(w.owner == owner for w in running):
                raise WatchRefused(409, "you are watching a filter already: stop it first")
            if len(running) >= self.max_watches:
                raise WatchRefused(
                    429, f"{self.max_watches} watches are running (each is a broker connection)"
                )
            watch = TopicWatch(
                id=secrets.token_urlsafe(9),
                owner=owner,
                filter=topic_filter,
                started_at=now,
                ends_at=now + timedelta(seconds=min(duration_s, MAX_DURATION_S)),
                max_messages=min(max_messages, MAX_MESSAGES),
            )
            self._watches[watch.id] = watch
        self._open(watch, min(duration_s, MAX_DURATION_S))
        return watch

    def get(self, owner: str, watch_id: str) -> TopicWatch | None:
        """The owner's watch (another person's answers None, like a missing one)."""
        with self._lock:
            self._forget_old(self.clock())
            watch = self._watches.get(watch_id)
        return watch if watch is not None and watch.owner == owner else None

    def mine(self, owner: str) -> list[TopicWatch]:
        with self._lock:
            self._forget_old(self.clock())
            return [w for w in self._watches.values() if w.owner == owner]

    def stop(self, owner: str, watch_id: str) -> bool:
        """End the owner's watch and forget what it saw at once."""
        watch = self.get(owner, watch_id)
        if watch is None:
            return False
        self._end(watch, "stopped")
        with self._lock:
            self._watches.pop(watch_id, None)
        return True

    def close(self) -> None:
        """End every watch (the gateway stops)."""
        with self._lock:
            watches = list(self._watches.values())
            self._watches.clear()
        for watch in watches:
            self._end(watch, "stopped")

    # -- the watch's own client (paho's thread) --------------------------------------------
    def _open(self, watch: TopicWatch, duration_s: float) -> None:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"lianfang-watch-{watch.id}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        watch._client = client

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self._end(watch, f"broker: {reason}")
                return
            c.subscribe(watch.filter, qos=0)

        def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
            if any(code.is_failure for code in codes):
                self._end(watch, "broker: subscription refused (its ACL for the gateway's account)")
            elif watch.state == "connecting":
                watch.state = "watching"

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            self._receive(watch, msg.topic, bytes(msg.payload))

        def on_connect_fail(_c: mqtt.Client, _u: Any) -> None:
            self._end(watch, f"broker: cannot connect to {self.config.host}:{self.config.port}")

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_connect_fail = on_connect_fail
        try:
            use_broker_account(client, self.config)
            client.connect_async(self.config.host, self.config.port, keepalive=30)
            client.loop_start()
        except Exception as exc:  # bad TLS files, a secret gone: said on the watch
            self._end(watch, f"broker: {exc}")
            return
        watch._timer = threading.Timer(duration_s, self._end, (watch, "time"))
        watch._timer.daemon = True
        watch._timer.start()

    def _receive(self, watch: TopicWatch, topic: str, payload: bytes) -> None:
        if watch.state == "ended":
            return
        at = self.clock()
        try:
            verdict = self.judge(topic, payload, at)
        except Exception as exc:  # a bug must not end paho's thread: shown on the message
            log.exception("topic watch: judging a message on %s failed", topic)
            verdict = Verdict(None, "adapter_error", repr(exc)[:500])
        with watch._lock:
            if len(watch.seen) >= watch.max_messages:
                return
            watch.seen.append(Seen(at, topic, len(payload), payload[:KEEP_BYTES], verdict))
            full = len(watch.seen) >= watch.max_messages
        if full:
            self._end(watch, "messages")

    def _end(self, watch: TopicWatch, reason: str) -> None:
        with watch._lock:
            if watch.state == "ended":
                return
            watch.state = "ended"
            watch.end_reason = reason
            watch.ended_at = self.clock()
        if watch._timer is not None:
            watch._timer.cancel()
        client = watch._client
        if client is not None:
            client.disconnect()
            client.loop_stop()  # from paho's own thread: returns without joining itself
        if reason.startswith("broker"):
            log.warning("topic watch of %r ended: %s", watch.filter, reason)
        # what it saw goes KEEP_AFTER_S later, whether anyone asks again or not
        forget = threading.Timer(KEEP_AFTER_S, self._drop, (watch.id,))
        forget.daemon = True
        forget.start()

    def _drop(self, watch_id: str) -> None:
        with self._lock:
            self._watches.pop(watch_id, None)

    def _forget_old(self, now: datetime) -> None:
        """Drop what ended watches saw, ``KEEP_AFTER_S`` after they ended (lock held)."""
        keep = timedelta(seconds=KEEP_AFTER_S)
        for watch_id, w in list(self._watches.items()):
            if w.ended_at is not None and now - w.ended_at > keep:
                del self._watches[watch_id]
