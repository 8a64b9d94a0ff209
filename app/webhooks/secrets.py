"""Hook secrets encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`), never our own.

A hook's secret is the HMAC key of its signatures, so it cannot be stored hashed as API keys are; it is
stored encrypted instead, under a key that is not in the database: `LIFELONG_WEBHOOK_SECRET_KEY` (one or
more Fernet keys, comma-separated: the first encrypts, any decrypts, so a key is rotated by putting the
new one first). Without it the embedded setup keeps a generated key in `<var_dir>/webhook-secret.key`
(mode 0600), which the API and the worker of one machine share; services on several hosts must set the
variable, the same on each, or deliveries fail saying so. A dump or backup of the database alone then
reveals no secret.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.settings import Settings

KEY_FILE = "webhook-secret.key"


class SecretKeyError(RuntimeError):
    """A hook's secret cannot be decrypted with the configured keys (another key encrypted it)."""


class SecretBox:
    """Encrypts hook secrets for the database and decrypts them to sign with."""

    def __init__(self, keys: list[bytes]):
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def of(cls, settings: Settings) -> SecretBox:
        configured = settings.webhook_secret_key
        if configured is not None and configured.get_secret_value().strip():
            return cls([key.strip().encode() for key in configured.get_secret_value().split(",") if key.strip()])
        return cls([_key_file(settings.var_dir)])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as error:
            raise SecretKeyError("the hook's secret does not decrypt with LIFELONG_WEBHOOK_SECRET_KEY (or the key "
                                 "file of this machine): set the same key on the API and every worker") from error


def _key_file(var_dir: Path) -> bytes:
    """The embedded key, made once: written whole under a temporary name, then linked into place, so that of
    two processes starting at once one key wins and neither reads a half-written file."""
    path = var_dir / KEY_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        draft = var_dir / f".{KEY_FILE}.{os.getpid()}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(Fernet.generate_key())
            key_file.flush()
            os.fsync(key_file.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()
