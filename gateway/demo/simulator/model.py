"""What the simulated fleet does, in logical time: no clock, no network, fully seeded.

:class:`FleetModel` turns a :class:`SiteConfig` into the messages its devices send. Time is
seconds since the start of the run; the runner (``gateway.demo.simulator.runner``) maps it to the
wall clock and publishes. Given the same site, rate and seed the model produces the same
messages in the same order, whatever the speed of the publisher.

Traffic, for a fleet-wide ``rate`` of ordinary events per second:

- heartbeats from every device every ``heartbeat_s / max(rate, 1)`` seconds (±10 % jitter), so
  they speed up with the rate but never come slower than the device's registered period;
- ordinary events (Poisson, ``rate`` per second) spread over devices by kind: door access
  (granted, some denied, exit button), barrier gates (plate reads of residents going in and
  out and of visitors, some vehicles denied), perimeter cameras (motion, line crossing).
  At night (22:00–06:00 device time) doors and gates are quieter and perimeter busier;
- anomalies (``ANOMALY_SHARE`` of the rate): see :data:`SCENARIOS`;
- panic presses (``PANIC_SHARE`` of the rate), a third of them cancelled soon after.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.config.sites import DeviceConfig, SiteConfig
from gateway.demo.simulator import payloads as p
from gateway.events import DeviceKind, Direction, EventType, PlateColour

ANOMALY_SHARE = 0.03  # anomaly scenarios per ordinary event
PANIC_SHARE = 0.002  # panic presses per ordinary event
DEFAULT_HEARTBEAT_S = {DeviceKind.ALARM: 300}
FALLBACK_HEARTBEAT_S = 60
RESIDENT_VEHICLES = 120
CARDS_PER_DOOR = 16

# Relative activity of one device of each kind in ordinary traffic (day, night).
ACTIVITY: dict[DeviceKind, tuple[float, float]] = {
    DeviceKind.ACCESS: (1.0, 0.3),
    DeviceKind.GATE: (6.0, 1.5),
    DeviceKind.PERIMETER: (1.0, 2.0),
    DeviceKind.SENSOR: (0.5, 0.3),
    DeviceKind.ALARM: (0.0, 0.0),  # panic buttons only speak for heartbeats and scenarios
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """An anomaly: which device kinds can play it and how often, by day and at night."""

    kinds: tuple[DeviceKind, ...]
    day: float
    night: float

    def weight(self, night: bool) -> float:
        return self.night if night else self.day


#: Anomaly scenarios by name (the story of each is in the ``FleetModel._<name>`` method).
SCENARIOS: dict[str, Scenario] = {
    "door_forced_open": Scenario((DeviceKind.ACCESS,), 0.14, 0.14),
    "door_held_open": Scenario((DeviceKind.ACCESS,), 0.20, 0.08),
    "repeated_denials": Scenario((DeviceKind.ACCESS,), 0.15, 0.10),
    "intrusion": Scenario((DeviceKind.PERIMETER,), 0.08, 0.35),
    "tamper": Scenario((DeviceKind.ACCESS, DeviceKind.ALARM), 0.08, 0.08),
    "video_loss": Scenario((DeviceKind.PERIMETER,), 0.05, 0.05),
    "battery_low": Scenario((DeviceKind.ALARM,), 0.12, 0.12),
    "device_offline": Scenario(tuple(DeviceKind), 0.08, 0.08),
    "panic": Scenario((DeviceKind.ALARM,), 0.0, 0.0),  # its own, rarer process (PANIC_SHARE)
}

STATUS = "status"


# Devices of these profiles speak Lianfang device JSON over MQTT; the others (GA/T 1400 and
# ISAPI push devices, …) have simulators of their own (gateway.demo.push).
MQTT_PROFILES = frozenset({None, "lianfang"})


def mqtt_devices(site: SiteConfig) -> list[DeviceConfig]:
    """The devices of ``site`` this simulator plays: not the alarm panels (SIA DC-09) and
    GB/T 28181 cameras, nor the HTTP push devices, which have simulators of their own."""
    return [
        d
        for d in site.devices
        if d.profile in MQTT_PROFILES and d.sia is None and d.gb28181 is None
    ]


def is_night(ts: datetime) -> bool:
    hour = ts.astimezone(p.CHINA_TZ).hour
    return hour >= 22 or hour < 6


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    payload: bytes
    retain: bool
    device_id: str
    kind: DeviceKind
    type: str  # an EventType value, or "status" for online/offline
    scenario: str | None = None


@dataclass(slots=True)
class _Device:
    config: DeviceConfig
    event_topic: str
    status_topic: str
    heartbeat_every: float
    seq: int
    online: bool = True
    battery: int | None = None
    cards: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def kind(self) -> DeviceKind:
        return self.config.kind

    @property
    def door(self) -> str:
        return self.config.place or self.config.id

    @property
    def zone(self) -> str | None:
        return self.config.zone

    @property
    def household(self) -> str:
        return self.config.household or self.config.id


@dataclass(slots=True)
class _Vehicle:
    plate: str
    colour: PlateColour
    inside: bool


Action = Callable[[float], None]


class FleetModel:
    """The seeded behaviour of every registered device of one site."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        rate: float,
        seed: int,
        start: datetime,
        seq_start: int = 1,
        background: bool = True,
    ) -> None:
        """``background=False`` schedules heartbeats only: traffic comes from :meth:`inject`."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not mqtt_devices(site):
            raise ValueError(f"site {site.id!r} has no devices to simulate")
        self.site = site
        self.rate = rate
        self.start = start.astimezone(p.CHINA_TZ)
        self.rng = random.Random(seed)
        self.sent: Counter[tuple[str, str]] = Counter()  # (kind, type) → messages
        self.scenarios_run: Counter[str] = Counter()
        self._heap: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        self._out: list[OutMessage] = []
        self._scenario: str | None = None
        self._track = itertools.count(1)

        speed = max(rate, 1.0)
        rng = self.rng
        self.devices = [
            _Device(
                config=d,
                event_topic=p.event_topic(site.id, d.id),
                status_topic=p.status_topic(site.id, d.id),
                heartbeat_every=(
                    d.heartbeat_s or DEFAULT_HEARTBEAT_S.get(d.kind, FALLBACK_HEARTBEAT_S)
                )
                / speed,
                seq=seq_start,
            )
            for d in mqtt_devices(site)
        ]
        self.by_kind: dict[DeviceKind, list[_Device]] = {k: [] for k in DeviceKind}
        for dev in self.devices:
            self.by_kind[dev.kind].append(dev)
            if dev.kind is DeviceKind.ALARM:
                dev.battery = rng.randint(40, 100)
            if dev.kind is DeviceKind.ACCESS:
                dev.cards = [p.random_card(rng) for _ in range(CARDS_PER_DOOR)]
        self.vehicles = [self._new_vehicle(rng.random() < 0.5) for _ in range(RESIDENT_VEHICLES)]
        self.max_offline = max(1, len(self.devices) // 20)

        for dev in self.devices:
            self._at(rng.uniform(0, dev.heartbeat_every), self._heartbeat_action(dev))
        if not background:
            return
        self._at(rng.expovariate(rate), self._ordinary)
        self._at(rng.expovariate(rate * ANOMALY_SHARE), self._anomaly)
        if self.by_kind[DeviceKind.ALARM]:
            self._at(rng.expovariate(rate * PANIC_SHARE), self._panic_process)

    # -- driving ---------------------------------------------------------------------------

    @property
    def next_due(self) -> float:
        return self._heap[0][0]

    def due(self, now: float) -> list[OutMessage]:
        """Messages of everything scheduled up to ``now`` (seconds since start), in order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            t, _, action = heapq.heappop(heap)
            action(t)
        out, self._out = self._out, []
        return out

    def start_messages(self) -> list[OutMessage]:
        """Retained ``online`` for every device (sent when the fleet connects)."""
        return [self._status(dev, online=True) for dev in self.devices]

    def status_messages(self) -> list[OutMessage]:
        """Every device's current status, retained (re-sent after a reconnect)."""
        return [self._status(dev, online=dev.online) for dev in self.devices]

    def stop_messages(self) -> list[OutMessage]:
        """Retained ``offline`` for every device (sent on a clean stop)."""
        return [self._status(dev, online=False) for dev in self.devices]

    def available_scenarios(self) -> list[str]:
        return [name for name, sc in SCENARIOS.items() if any(self.by_kind[k] for k in sc.kinds)]

    def inject(self, scenario: str, now: float, device_id: str | None = None) -> list[OutMessage]:
        """Start one scenario at ``now`` and return its messages due by then."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
        kinds = SCENARIOS[scenario].kinds
        if device_id is None:
            dev = self._pick([d for k in kinds for d in self.by_kind[k]])
        else:
            dev = next((d for d in self.devices if d.id == device_id), None)
            if dev is not None and dev.kind not in kinds:
                raise ValueError(f"{scenario} needs a device of kind {kinds}, {device_id} is not")
        if dev is None:
            return self.due(now)
        self._start_scenario(scenario, dev, now)
        return self.due(now)

    # -- scheduling helpers ----------------------------------------------------------------

    def _at(self, t: float, action: Action) -> None:
        heapq.heappush(self._heap, (t, next(self._order), action))

    def _later(self, t: float, scenario: str | None, action: Action) -> None:
        def run(when: float) -> None:
            self._scenario = scenario
            try:
                action(when)
            finally:
                self._scenario = None

        self._at(t, run)

    def _ts(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def _emit(self, dev: _Device, t: float, type_: EventType, attrs: p.Attrs) -> None:
        if not dev.online:
            return  # an offline device says nothing; its scheduled steps are lost
        dev.seq += 1
        body = p.encode(p.event_payload(dev.seq, self._ts(t), dev.kind, type_, attrs))
        self._out.append(
            OutMessage(dev.event_topic, body, False, dev.id, dev.kind, type_.value, self._scenario)
        )
        self.sent[(dev.kind.value, type_.value)] += 1

    def _status(self, dev: _Device, *, online: bool) -> OutMessage:
        self.sent[(dev.kind.value, STATUS)] += 1
        return OutMessage(
            dev.status_topic,
            p.STATUS_ONLINE if online else p.STATUS_OFFLINE,
            True,
            dev.id,
            dev.kind,
            STATUS,
            self._scenario,
        )

    def _pick(self, devices: Sequence[_Device]) -> _Device | None:
        online = [d for d in devices if d.online]
        return self.rng.choice(online) if online else None

    # -- processes -------------------------------------------------------------------------

    def _heartbeat_action(self, dev: _Device) -> Action:
        def beat(t: float) -> None:
            if dev.online:
                self._emit(dev, t, EventType.HEARTBEAT, self._health(dev))
            self._at(t + dev.heartbeat_every * self.rng.uniform(0.9, 1.1), beat)

        return beat

    def _health(self, dev: _Device) -> p.Attrs:
        return p.health_attrs(battery=dev.battery, zone=dev.zone)

    def _ordinary(self, t: float) -> None:
        rng = self.rng
        night = 1 if is_night(self._ts(t)) else 0
        kinds = [k for k in DeviceKind if self.by_kind[k] and ACTIVITY[k][night] > 0]
        if kinds:
            weights = [len(self.by_kind[k]) * ACTIVITY[k][night] for k in kinds]
            kind = rng.choices(kinds, weights)[0]
            dev = self._pick(self.by_kind[kind])
            if dev is not None:
                ORDINARY[kind](self, dev, t, bool(night))
        self._at(t + rng.expovariate(self.rate), self._ordinary)

    def _anomaly(self, t: float) -> None:
        rng = self.rng
        night = is_night(self._ts(t))
        names = [n for n in self.available_scenarios() if SCENARIOS[n].weight(night) > 0]
        if names:
            name = rng.choices(names, [SCENARIOS[n].weight(night) for n in names])[0]
            kinds = SCENARIOS[name].kinds
            dev = self._pick([d for k in kinds for d in self.by_kind[k]])
            if dev is not None:
                self._start_scenario(name, dev, t)
        self._at(t + rng.expovariate(self.rate * ANOMALY_SHARE), self._anomaly)

    def _panic_process(self, t: float) -> None:
        dev = self._pick(self.by_kind[DeviceKind.ALARM])
        if dev is not None:
            self._start_scenario("panic", dev, t)
        self._at(t + self.rng.expovariate(self.rate * PANIC_SHARE), self._panic_process)

    def _start_scenario(self, name: str, dev: _Device, t: float) -> None:
        if name == "device_offline" and (
            not dev.online or sum(not d.online for d in self.devices) >= self.max_offline
        ):
            return
        self.scenarios_run[name] += 1
        self._scenario = name
        try:
            SCENARIO_STARTS[name](self, dev, t)
        finally:
            self._scenario = None

    # -- ordinary traffic per kind ---------------------------------------------------------

    def _new_vehicle(self, inside: bool) -> _Vehicle:
        colour = p.random_plate_colour(self.rng)
        return _Vehicle(p.random_plate(self.rng, colour), colour, inside)

    def _access(self, dev: _Device, t: float, night: bool) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.86:
            direction = Direction.IN if rng.random() < 0.8 else Direction.OUT
            card = rng.choice(dev.cards)
            self._emit(dev, t, EventType.ACCESS_GRANTED, p.access_attrs(dev.door, direction, card))
        elif roll < 0.92:
            self._emit(
                dev,
                t,
                EventType.ACCESS_DENIED,
                p.access_attrs(dev.door, Direction.IN, self._stranger_card(dev)),
            )
        else:  # exit button: the door opens from inside and closes a few seconds later
            self._emit(dev, t, EventType.DOOR_OPEN, p.access_attrs(dev.door, Direction.OUT))
            self._later(
                t + rng.uniform(3, 8),
                self._scenario,
                lambda w: self._emit(dev, w, EventType.DOOR_CLOSED, p.access_attrs(dev.door)),
            )

    def _stranger_card(self, dev: _Device) -> str:
        """A card this door refuses: unknown/expired, or a resident's of another building."""
        others = [d for d in self.by_kind[DeviceKind.ACCESS] if d is not dev]
        if others and self.rng.random() < 0.5:
            return self.rng.choice(self.rng.choice(others).cards)
        return p.random_card(self.rng)

    def _gate(self, dev: _Device, t: float, night: bool) -> None:
        rng = self.rng
        confidence = rng.uniform(0.88, 0.995) if rng.random() < 0.96 else rng.uniform(0.55, 0.85)
        if rng.random() < 0.75:  # a resident's car, going the other way from last time
            car = rng.choice(self.vehicles)
            car.inside = not car.inside
            direction = Direction.IN if car.inside else Direction.OUT
            type_ = EventType.PLATE_READ
            plate, colour = car.plate, car.colour
        else:  # a visitor; a quarter of those arriving are not registered and refused
            colour = p.random_plate_colour(rng)
            plate = p.random_plate(rng, colour)
            direction = Direction.IN if rng.random() < 0.7 else Direction.OUT
            refused = direction is Direction.IN and rng.random() < 0.25
            type_ = EventType.VEHICLE_DENIED if refused else EventType.PLATE_READ
        lane = "入口" if direction is Direction.IN else "出口"
        self._emit(
            dev,
            t,
            type_,
            p.gate_attrs(plate, colour, direction, confidence, lane=lane, zone=dev.zone),
        )

    def _perimeter(self, dev: _Device, t: float, night: bool) -> None:
        rng = self.rng
        if rng.random() < 0.8:
            labels, weights = ("person", "animal", "vehicle"), (0.45, 0.35, 0.2)
            if night:
                weights = (0.2, 0.7, 0.1)
            label = rng.choices(labels, weights)[0]
            attrs = p.perimeter_attrs(dev.zone, label, rng.uniform(0.5, 0.95), self._track_id())
            self._emit(dev, t, EventType.MOTION, attrs)
        else:  # someone walking past a virtual line along the fence (a patrolling guard)
            attrs = p.perimeter_attrs(dev.zone, "person", rng.uniform(0.7, 0.97), self._track_id())
            self._emit(dev, t, EventType.LINE_CROSSING, attrs)

    def _sensor(self, dev: _Device, t: float, night: bool) -> None:
        self._emit(dev, t, EventType.DOOR_OPEN, {"contact": False, **self._health(dev)})
        self._later(
            t + self.rng.uniform(5, 30),
            self._scenario,
            lambda w: self._emit(
                dev, w, EventType.DOOR_CLOSED, {"contact": True, **self._health(dev)}
            ),
        )

    def _track_id(self) -> str:
        return f"t{next(self._track)}"

    # -- anomaly scenarios -----------------------------------------------------------------

    def _door_forced_open(self, dev: _Device, t: float) -> None:
        self._emit(dev, t, EventType.DOOR_FORCED_OPEN, p.access_attrs(dev.door, zone=dev.zone))
        self._later(
            t + self.rng.uniform(15, 90),
            "door_forced_open",
            lambda w: self._emit(dev, w, EventType.DOOR_CLOSED, p.access_attrs(dev.door)),
        )

    def _door_held_open(self, dev: _Device, t: float) -> None:
        rng = self.rng
        card = rng.choice(dev.cards)
        self._emit(dev, t, EventType.ACCESS_GRANTED, p.access_attrs(dev.door, Direction.IN, card))
        opened = t + rng.uniform(0.5, 2)
        held = opened + 30  # the controller's own held-open threshold
        closed = held + rng.uniform(20, 150)
        name = "door_held_open"
        self._later(
            opened,
            name,
            lambda w: self._emit(
                dev, w, EventType.DOOR_OPEN, p.access_attrs(dev.door, Direction.IN)
            ),
        )
        self._later(
            held,
            name,
            lambda w: self._emit(
                dev, w, EventType.DOOR_HELD_OPEN, p.access_attrs(dev.door, zone=dev.zone)
            ),
        )
        self._later(
            closed,
            name,
            lambda w: self._emit(dev, w, EventType.DOOR_CLOSED, p.access_attrs(dev.door)),
        )

    def _repeated_denials(self, dev: _Device, t: float) -> None:
        rng = self.rng
        card = p.random_card(rng)  # someone trying a card that is not theirs, again and again
        attrs = p.access_attrs(dev.door, Direction.IN, card)
        self._emit(dev, t, EventType.ACCESS_DENIED, attrs)
        when = t
        for _ in range(rng.randint(3, 6)):
            when += rng.uniform(2, 8)
            self._later(
                when,
                "repeated_denials",
                lambda w: self._emit(dev, w, EventType.ACCESS_DENIED, attrs),
            )

    def _intrusion(self, dev: _Device, t: float) -> None:
        rng = self.rng
        track = self._track_id()
        self._emit(
            dev,
            t,
            EventType.LINE_CROSSING,
            p.perimeter_attrs(dev.zone, "person", rng.uniform(0.8, 0.97), track),
        )
        attrs = p.perimeter_attrs(dev.zone, "person", rng.uniform(0.85, 0.98), track)
        self._later(
            t + rng.uniform(2, 6),
            "intrusion",
            lambda w: self._emit(dev, w, EventType.INTRUSION, attrs),
        )

    def _tamper(self, dev: _Device, t: float) -> None:
        if dev.kind is DeviceKind.ACCESS:
            attrs = p.access_attrs(dev.door, zone=dev.zone)
        elif dev.kind is DeviceKind.ALARM:
            attrs = p.alarm_attrs(dev.household, battery=dev.battery)
        else:
            attrs = self._health(dev)
        self._emit(dev, t, EventType.TAMPER, attrs)

    def _video_loss(self, dev: _Device, t: float) -> None:
        self._emit(dev, t, EventType.VIDEO_LOSS, p.health_attrs(zone=dev.zone))

    def _battery_low(self, dev: _Device, t: float) -> None:
        dev.battery = self.rng.randint(5, 15)
        self._emit(dev, t, EventType.BATTERY_LOW, p.alarm_attrs(dev.household, battery=dev.battery))

    def _device_offline(self, dev: _Device, t: float) -> None:
        """Heartbeats stop and the retained status says offline; later it comes back."""
        self._out.append(self._status(dev, online=False))
        dev.online = False

        def back(w: float) -> None:
            dev.online = True
            self._out.append(self._status(dev, online=True))
            self._emit(dev, w, EventType.HEARTBEAT, self._health(dev))

        self._later(t + dev.heartbeat_every * self.rng.uniform(3, 6), "device_offline", back)

    def _panic(self, dev: _Device, t: float) -> None:
        rng = self.rng
        attrs = p.alarm_attrs(dev.household, battery=dev.battery)
        self._emit(dev, t, EventType.PANIC, attrs)
        if rng.random() < 0.35:  # pressed by mistake; the household cancels
            self._later(
                t + rng.uniform(8, 60),
                "panic",
                lambda w: self._emit(dev, w, EventType.PANIC_CANCEL, attrs),
            )


ORDINARY: dict[DeviceKind, Callable[[FleetModel, _Device, float, bool], None]] = {
    DeviceKind.ACCESS: FleetModel._access,
    DeviceKind.GATE: FleetModel._gate,
    DeviceKind.PERIMETER: FleetModel._perimeter,
    DeviceKind.SENSOR: FleetModel._sensor,
    DeviceKind.ALARM: lambda model, dev, t, night: None,
}

SCENARIO_STARTS: dict[str, Callable[[FleetModel, _Device, float], None]] = {
    "door_forced_open": FleetModel._door_forced_open,
    "door_held_open": FleetModel._door_held_open,
    "repeated_denials": FleetModel._repeated_denials,
    "intrusion": FleetModel._intrusion,
    "tamper": FleetModel._tamper,
    "video_loss": FleetModel._video_loss,
    "battery_low": FleetModel._battery_low,
    "device_offline": FleetModel._device_offline,
    "panic": FleetModel._panic,
}
