"""The ``isapi:`` section of ``lianfang.yaml``."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_TOPIC = "hikvision/{device}/event"


class IsapiConfig(BaseModel):
    """Hikvision ISAPI push listener on the API's port, under ``/isapi/events/<device id>``.
    Off unless enabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    realm: str = Field(
        "lianfang-isapi", min_length=1, max_length=64, pattern=r'^[^"\\]+$',
        description="Digest realm offered to devices (httpAuthenticationMethod MD5digest)",
    )  # fmt: skip
    max_body_mb: float = Field(8, gt=0, le=128, description="Larger pushes are refused (413)")
    max_parts: int = Field(8, ge=1, le=64, description="Multipart parts per push at most")
    max_images_per_record: int = Field(4, ge=0, le=16, description="Pictures kept per event")
    max_image_kb: int = Field(2048, ge=16, le=65_536, description="Larger pictures are not kept")
    topic: str = Field(
        DEFAULT_TOPIC,
        description="Topic the event document is read under ({device}: the device id); "
        "the profile that takes it maps the event",
    )
    event_topics: dict[str, str] = Field(
        default_factory=lambda: {
            "ANPR": "hikvision/{device}/alert",
            "videoloss": "hikvision/{device}/alert",
        },
        description="Topic per ISAPI eventType, where another profile reads it",
    )
    unauthenticated: dict[str, str] = Field(
        default_factory=dict,
        description="Devices that cannot authenticate (device id → the one source address "
        "they may push from without credentials)",
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if "{device}" not in value:
            raise ValueError("must contain {device}")
        return value

    @field_validator("event_topics")
    @classmethod
    def _topics(cls, value: dict[str, str]) -> dict[str, str]:
        for event_type, topic in value.items():
            if "{device}" not in topic:
                raise ValueError(f"topic of {event_type} must contain {{device}}")
        return value

    @field_validator("unauthenticated")
    @classmethod
    def _addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for device_id, address in value.items():
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{device_id}: {address!r} is not an IP address") from None
        return value

    def topic_for(self, event_type: str, device_id: str) -> str:
        return self.event_topics.get(event_type, self.topic).replace("{device}", device_id)
