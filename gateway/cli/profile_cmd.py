"""``lianfang profile list`` and ``lianfang profile test``: device profiles from the command line.

``test`` runs one message through one profile exactly as the gateway would (the same payload
decoder, the same engine) and prints the events, or the reason there are none::

    lianfang profile test hikvision-acs tests/profiles/hikvision-acs/card_granted.yaml
    lianfang profile test zigbee2mqtt capture.json --topic zigbee2mqtt/sos-1 \\
        --registry-device sos-1=lianhua-xiaoqu:alarm
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from device_adapters.base import DeviceInfo, MappingError, Message, NoMatch
from device_adapters.profiles.engine import ProfileAdapter, UnknownDevice
from device_adapters.profiles.loader import load_presets, load_profile, load_profiles
from device_adapters.profiles.schema import Profile
from gateway.config.errors import ConfigErrors
from gateway.config.loader import load_yaml
from gateway.events import DeviceKind, Event, utcnow
from gateway.ingest.decode import Rejected, decode_payload

app = typer.Typer(
    help="Device profiles: list them, test one against a payload.", no_args_is_help=True
)

DEFAULT_PROFILES_DIR = Path("config/profiles")
# Receive time of a sample case that gives none (the contract test uses the same), so a case
# gives the same events today and in a year; a raw payload is received "now".
SAMPLE_RECEIVED_AT = datetime(2026, 11, 22, 13, 5, tzinfo=UTC)
MAX_PAYLOAD_BYTES = 1 << 20
MAX_JSON_DEPTH = 64

ProfilesDirOption = typer.Option(
    DEFAULT_PROFILES_DIR, "--profiles-dir", help="Folder of profiles (with presets/)"
)


class ProfileNotFound(Exception):
    pass


def resolve_profile(name: str, profiles_dir: Path) -> Profile:
    """A path to a profile file, or a profile id looked up in ``profiles_dir``.

    Only the wanted file is validated, so a broken neighbour does not block testing this one.
    """
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ProfileNotFound(f"{path}: file not found")
        return load_profile(path, load_presets(path.parent / "presets"))
    presets = load_presets(profiles_dir / "presets")
    known: list[str] = []
    for candidate in sorted(profiles_dir.glob("*.yaml")):
        try:
            data = load_yaml(candidate)
        except ConfigErrors:
            continue
        profile_id = data.get("profile") if isinstance(data, dict) else None
        if profile_id == name:
            return load_profile(candidate, presets)
        if isinstance(profile_id, str):
            known.append(profile_id)
    if not profiles_dir.is_dir():
        raise ProfileNotFound(f"no profile {name!r}: {missing_folder(profiles_dir)}")
    raise ProfileNotFound(
        f"no profile {name!r} in {profiles_dir} (known: {', '.join(known) or 'none'})"
    )


def missing_folder(profiles_dir: Path) -> str:
    """What to say when the profiles folder is not there (a relative default read from
    another working directory, most often)."""
    return (
        f"{profiles_dir} does not exist (looked in {profiles_dir.resolve()}); run lianfang "
        "from the folder that holds config/, or pass --profiles-dir"
    )


def parse_registry(entries: list[str]) -> dict[str, DeviceInfo]:
    """``ID=SITE:KIND`` options → a registry."""
    registry: dict[str, DeviceInfo] = {}
    kinds = ", ".join(k.value for k in DeviceKind)
    for entry in entries:
        device_id, sep, rest = entry.partition("=")
        site, sep2, kind = rest.rpartition(":")
        if not (sep and sep2 and device_id and site):
            raise typer.BadParameter(
                f"{entry!r}: expected ID=SITE:KIND", param_hint="--registry-device"
            )
        try:
            registry[device_id] = DeviceInfo(site, DeviceKind(kind))
        except ValueError:
            raise typer.BadParameter(
                f"{entry!r}: kind {kind!r} is not one of {kinds}", param_hint="--registry-device"
            ) from None
    return registry


def encode_payload(payload: Any) -> bytes:
    """A case file's payload as the device would send it: text as is, anything else as JSON."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def read_message_file(path: Path) -> tuple[bytes, dict[str, Any] | None]:
    """(payload bytes, the case if the file is a sample case with ``topic`` and ``payload``)."""
    raw = path.read_bytes()
    if path.suffix in (".yaml", ".yml", ".json"):
        try:
            data = load_yaml(path)
        except ConfigErrors:
            data = None
        if isinstance(data, dict) and "topic" in data and "payload" in data:
            return encode_payload(data["payload"]), data
    return raw, None


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _case_registry(case: dict[str, Any]) -> dict[str, DeviceInfo]:
    registry: dict[str, DeviceInfo] = {}
    for device_id, info in (case.get("registry") or {}).items():
        registry[str(device_id)] = DeviceInfo(str(info["site"]), DeviceKind(info["kind"]))
    return registry


def _received_at(case: dict[str, Any] | None) -> datetime:
    if case is None:
        return utcnow()
    value = case.get("received_at", SAMPLE_RECEIVED_AT)
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@app.command("test")
def test(
    profile: str = typer.Argument(..., help="Profile id, or path to a profile YAML file"),
    payload: Path = typer.Argument(
        ..., help="Sample case file (with topic and payload), or a raw payload file"
    ),
    topic: str | None = typer.Option(
        None, "--topic", help="Topic the payload arrived on (required for a raw payload)"
    ),
    registry_device: list[str] = typer.Option(
        [], "--registry-device", help="Registry entry ID=SITE:KIND; repeat for several devices"
    ),
    profiles_dir: Path = ProfilesDirOption,
    timezone: str = typer.Option(
        "Asia/Shanghai", "--tz", help="Gateway zone for naive device times"
    ),
) -> None:
    """Normalise one message with one profile; print the events as JSON or why there are none."""
    registry = parse_registry(registry_device)
    try:
        chosen = resolve_profile(profile, profiles_dir)
    except ProfileNotFound as exc:
        raise _fail(str(exc)) from None
    except ConfigErrors as exc:
        raise _fail(f"the profile does not load:\n{exc}") from None
    if not payload.is_file():
        raise _fail(f"{payload}: file not found")
    raw, case = read_message_file(payload)
    if case is not None:
        registry = {**_case_registry(case), **registry}
        topic = topic or str(case["topic"])
    if topic is None:
        raise _fail(f"{payload} is a raw payload: give the topic it arrived on with --topic")

    adapter = ProfileAdapter(chosen, default_tz=timezone)
    if not adapter.accepts(topic):
        raise _fail(
            f"profile {chosen.profile} does not take topic {topic} "
            f"(its topics: {', '.join(m for m in _patterns(chosen))})"
        )
    fmt = adapter.payload_format(topic)
    try:
        decoded = decode_payload(raw, fmt, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_JSON_DEPTH)
    except Rejected as exc:
        raise _fail(f"payload rejected before the profile ({fmt}): {exc}") from None
    message = Message(topic, decoded, raw, _received_at(case))

    def lookup(device_id: str) -> DeviceInfo | None:
        return registry.get(device_id)

    try:
        events = adapter.normalise(message, lookup)
    except UnknownDevice as exc:
        raise _fail(
            f"no event: {exc.reason}\n"
            f"hint: --registry-device {exc.device_id}=SITE:KIND gives it a site and kind"
        ) from None
    except NoMatch as exc:
        raise _fail(f"no event: {exc.reason}") from None
    except MappingError as exc:
        raise _fail(f"invalid event: {exc}") from None
    typer.echo(json.dumps([_event_json(e) for e in events], ensure_ascii=False, indent=2))


def _event_json(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _patterns(profile: Profile) -> list[str]:
    seen: list[str] = []
    for mapping in profile.mappings:
        seen.extend(t for t in mapping.topic if t not in seen)
    return seen


@app.command("list")
def list_profiles(profiles_dir: Path = ProfilesDirOption) -> None:
    """Every profile in the folder with the MQTT topics it subscribes to."""
    try:
        profiles = load_profiles(profiles_dir)
    except ConfigErrors as exc:
        for err in exc.errors:
            typer.echo(f"error {err}", err=True)
        raise typer.Exit(1) from None
    if not profiles_dir.is_dir():
        raise _fail(f"no profiles: {missing_folder(profiles_dir)}")
    if not profiles:
        typer.echo(f"no profiles in {profiles_dir.resolve()}")
        return
    for profile in profiles:
        adapter = ProfileAdapter(profile)
        typer.echo(f"{profile.profile}  {profile.name}")
        for subscription in adapter.subscriptions():
            mappings = [
                m.id
                for m in profile.mappings
                if any(t.subscription == subscription for t in m.topics)
            ]
            typer.echo(f"    {subscription}  ({', '.join(mappings)})")
