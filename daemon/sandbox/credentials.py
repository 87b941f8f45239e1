"""API credentials and the URL-signing secret of one sandbox, created once and kept in its DIR.

They persist so a library configured against a sandbox keeps working across sandbox restarts.
The file is written atomically with mode 0600: it holds secrets.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

FILENAME = "credentials.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    api_user: str
    api_key: str
    signing_secret: str


def load_or_create(data_dir: Path, *, api_user: str = "sandbox-admin") -> Credentials:
    """Read ``DIR/credentials.json``, or create it with fresh random secrets."""
    path = data_dir / FILENAME
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(str(raw["api_user"]), str(raw["api_key"]), str(raw["signing_secret"]))
    creds = Credentials(api_user=api_user, api_key=secrets.token_hex(20), signing_secret=secrets.token_hex(32))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(creds), out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return creds
