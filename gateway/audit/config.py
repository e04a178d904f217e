"""Where the audit log's secrets and checkpoints live (``audit:`` in ``lianfang.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: Path | None = Field(
        None,
        description="0600 file holding the HMAC key, outside the data folder (production); "
        "else LIANFANG_AUDIT_KEY / LIANFANG_AUDIT_KEY_FILE, else <data_dir>/audit.key",
    )
    checkpoint_file: Path | None = Field(
        None,
        description="Signed copy of the chain's head, rewritten after every append; "
        "default <data_dir>/audit-checkpoint.json. Put it where the database's writers "
        "cannot write (another volume, another owner)",
    )
    checkpoint_log_s: float = Field(
        60, gt=0, le=86_400, description="How often a changed head is written to the log"
    )

    @field_validator("key_file", "checkpoint_file")
    @classmethod
    def _relative_to_the_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and base is not None and not value.is_absolute():
            return (Path(base) / value).resolve()
        return value
