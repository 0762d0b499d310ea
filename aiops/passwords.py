"""Salted password hashes for the people who may look at pages (and, later, approve actions).

Format: `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`, produced by `aiops hash-password`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of `password` against an `aiops hash-password` string; False for malformed ones."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def is_well_formed(encoded: str) -> bool:
    parts = encoded.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(part.isdigit() for part in parts[1:4])


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Login(BaseModel):
    """A person who may sign in (to read pages, or to approve): a name and a hash from `aiops hash-password`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not is_well_formed(value):
            raise ValueError("is not a hash made by `aiops hash-password`")
        return value
