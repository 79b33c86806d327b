"""Passwords (Argon2id), opaque session bearers, and secret values encrypted at rest (Fernet).

argon2-cffi: the reference Argon2 binding with safe defaults and rehash detection.
cryptography's Fernet: authenticated encryption (AES-128-CBC + HMAC-SHA256) with a versioned format,
so we do not hand-roll a cipher construction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from mcpctl.core.errors import InvalidError, McpctlError

SESSION_PREFIX = "mcpctl_ses_"
MIN_PASSWORD_LENGTH = 8


class Passwords:
    """Argon2id hashing with tunable cost. Verification reads the parameters stored in each hash, so
    changing the cost never locks anyone out; `needs_rehash` tells when a stored hash is outdated."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65_536, parallelism: int = 4):
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """Argon2id hash of a password, after checking its length."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidError(
                f"password must be at least {MIN_PASSWORD_LENGTH} characters", details={"field": "password"}
            )
        if len(password) > 1024:
            raise InvalidError("password must be at most 1024 characters", details={"field": "password"})
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no stored hash, do the same work so timing reveals nothing."""
        if password_hash is None and self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        try:
            ok = self._hasher.verify(password_hash or self._dummy or "", password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


_default = Passwords()


def hash_password(password: str) -> str:
    """Argon2id hash with the default (RFC 9106 low-memory) cost."""
    return _default.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    return _default.verify(password_hash, password)


def new_session_token() -> str:
    """An opaque random login-session bearer (returned once; only its SHA-256 is stored)."""
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def generate_password() -> str:
    return secrets.token_urlsafe(18)


class SecretCipher:
    """Encrypts and decrypts secret values with a key derived from `MCPD_SECRET_KEY` or a key file."""

    def __init__(self, key: str):
        try:
            self._fernet = Fernet(key.encode() if _is_fernet_key(key) else _derive(key))
        except ValueError as exc:  # pragma: no cover - _derive always yields a valid key
            raise McpctlError("invalid secret key") from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise McpctlError("cannot decrypt secret: wrong MCPD_SECRET_KEY for this database") from exc


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32 and len(key) == 44
    except ValueError:
        return False


def _derive(passphrase: str) -> bytes:
    # Any passphrase works as MCPD_SECRET_KEY: derive a Fernet key from it deterministically.
    digest = hashlib.sha256(b"mcpctl-secret-key\x00" + passphrase.encode()).digest()
    return base64.urlsafe_b64encode(digest)
