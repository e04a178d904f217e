"""The ``gat1400:`` section of ``lianfang.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GAT1400_ID = r"^[0-9]{20}$"


class Gat1400Config(BaseModel):
    """GA/T 1400 视图库 server on the API's port, under ``/VIID``. Off unless enabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    server_id: str = Field(
        "00000000005030000001",
        pattern=GAT1400_ID,
        description="This 视图库's own 20-digit id (answers of System/Time)",
    )
    realm: str = Field(
        "lianfang-viid", min_length=1, max_length=64, pattern=r'^[^"\\]+$',
        description="Digest realm of System/Register",
    )  # fmt: skip
    digest_algorithm: Literal["MD5", "SHA-256"] = Field(
        "MD5", description="Offered in the challenge (GA/T 1400 devices commonly know MD5 only)"
    )
    session_timeout_s: int = Field(
        180,
        ge=30,
        le=86_400,
        description="A registration lapses after this long without a keepalive",
    )
    max_body_mb: float = Field(16, gt=0, le=256, description="Larger posts are refused (413)")
    max_records: int = Field(500, ge=1, le=10_000, description="Records per post at most")
    max_images_per_record: int = Field(4, ge=0, le=16, description="Pictures kept per record")
    max_image_kb: int = Field(2048, ge=16, le=65_536, description="Larger pictures are not kept")
    platforms: list[str] = Field(
        default_factory=list,
        description="Senders (lower-level 视图库, NVRs) that may post records of other "
        "registered devices; any other sender only its own",
    )
