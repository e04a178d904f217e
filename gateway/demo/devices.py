"""The demo's password for simulated devices of the push protocols (SIA DC-09 encryption key
aside, GB/T 28181 and GA/T 1400 digest authentication).

``LIANFANG_DEMO_DEVICE_PASSWORD`` when set; otherwise generated on the first run of a data
folder and kept there (0600), so a real device pointed at the demo keeps working across runs,
and printed by ``lianfang demo`` like the administrator's.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PASSWORD_ENV = "LIANFANG_DEMO_DEVICE_PASSWORD"
PASSWORD_FILE = "demo-device-password"


def demo_device_password(data_dir: Path) -> str:
    """The device password of this demo data folder (and set in the environment)."""
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    path = data_dir / PASSWORD_FILE
    if path.exists():
        password = path.read_text(encoding="utf-8").strip()
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(password + "\n")
    os.environ[PASSWORD_ENV] = password
    return password
