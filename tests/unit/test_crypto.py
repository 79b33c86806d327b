"""Password hashes (Argon2id), session bearers and secrets encrypted at rest (Fernet)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core.crypto import (
    MIN_PASSWORD_LENGTH,
    SESSION_PREFIX,
    SecretCipher,
    constant_time_equal,
    hash_password,
    new_session_token,
    sha256_hex,
    verify_password,
)
from mcpctl.core.errors import InvalidError, McpctlError

PASSWORD = "s3cret-Pass"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def test_a_password_hash_is_argon2id_and_verifies_only_the_same_password(password_hash: str) -> None:
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash
    assert verify_password(password_hash, PASSWORD)
    assert not verify_password(password_hash, PASSWORD.upper())
    assert not verify_password(password_hash, "")


def test_hashing_the_same_password_twice_gives_different_salted_hashes(password_hash: str) -> None:
    assert hash_password(PASSWORD) != password_hash


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$m=1,t=1,p=1$broken"])
def test_verifying_against_no_or_a_malformed_hash_is_false(stored: str | None) -> None:
    assert verify_password(stored, PASSWORD) is False


@pytest.mark.parametrize("password", ["", "x" * (MIN_PASSWORD_LENGTH - 1), "x" * 1025])
def test_passwords_outside_the_length_bounds_are_invalid(password: str) -> None:
    with pytest.raises(InvalidError) as caught:
        hash_password(password)
    assert caught.value.details == {"field": "password"}


def test_a_password_of_exactly_the_minimum_length_is_accepted() -> None:
    assert verify_password(hash_password("x" * MIN_PASSWORD_LENGTH), "x" * MIN_PASSWORD_LENGTH)


def test_session_tokens_are_prefixed_and_unique() -> None:
    tokens = {new_session_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(t.startswith(SESSION_PREFIX) and len(t) > len(SESSION_PREFIX) + 40 for t in tokens)


def test_sha256_hex_and_constant_time_equal() -> None:
    assert sha256_hex("abc") == hashlib.sha256(b"abc").hexdigest()
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")


# --- secrets at rest ---------------------------------------------------------------------------------

# Fixed keys (not generated at import): parametrized test ids must match across pytest-xdist workers.
FERNET_KEY = "KZQlGr7QuP0hTuiM9nmpFphFJZ7KiOQDqM-ka7JR1I0="
OTHER_FERNET_KEY = "Xc4thjA2dID9LQOL24BusNk5FZHw46wk-2bP7HjIVME="


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=256))
def test_a_fernet_key_cipher_round_trips_any_bytes(plaintext: bytes) -> None:
    cipher = SecretCipher(FERNET_KEY)
    assert cipher.decrypt(cipher.encrypt(plaintext)) == plaintext


def test_ciphertext_does_not_contain_the_plaintext_and_is_fresh_each_time() -> None:
    cipher = SecretCipher(FERNET_KEY)
    first, second = cipher.encrypt(b"glsa_secret_value"), cipher.encrypt(b"glsa_secret_value")
    assert b"glsa_secret_value" not in first
    assert first != second


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=60), st.binary(max_size=64))
def test_any_passphrase_derives_the_same_key_every_time(passphrase: str, plaintext: bytes) -> None:
    token = SecretCipher(passphrase).encrypt(plaintext)
    assert SecretCipher(passphrase).decrypt(token) == plaintext


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        (FERNET_KEY, OTHER_FERNET_KEY),
        ("correct horse battery staple", "correct horse battery stapler"),
        (FERNET_KEY, "some passphrase"),
    ],
)
def test_decrypting_with_the_wrong_key_is_an_mcpctl_error(writer: str, reader: str) -> None:
    token = SecretCipher(writer).encrypt(b"glsa_xxx")
    with pytest.raises(McpctlError) as caught:
        SecretCipher(reader).decrypt(token)
    assert caught.value.code == "internal"


@pytest.mark.parametrize("token", [b"", b"not-a-fernet-token", b"gAAAAA" + b"A" * 80])
def test_decrypting_garbage_is_an_mcpctl_error(token: bytes) -> None:
    with pytest.raises(McpctlError):
        SecretCipher(FERNET_KEY).decrypt(token)


def test_a_tampered_ciphertext_is_an_mcpctl_error() -> None:
    cipher = SecretCipher(FERNET_KEY)
    token = bytearray(cipher.encrypt(b"glsa_xxx"))
    token[-5] = ord("A") if token[-5] != ord("A") else ord("B")
    with pytest.raises(McpctlError):
        cipher.decrypt(bytes(token))
