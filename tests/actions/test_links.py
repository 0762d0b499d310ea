"""Approval link tokens: they round-trip, and a garbled, forged or expired one is refused with the reason."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from aiops.actions.links import (
    BadToken,
    TokenClaims,
    approval_url,
    form_proof,
    make_token,
    proof_matches,
    read_token,
    signing_key,
)
from aiops.actions.policy import RemediationConfig
from aiops.store import actions

KEY = b"k" * 32
HASH = actions.argv_hash("web-1", ["systemctl", "restart", "nginx"])
NOW = 1_800_000_000.0


def reason(key: bytes, token: str, now: float = NOW) -> str:
    with pytest.raises(BadToken) as refused:
        read_token(key, token, now)
    return refused.value.reason


def test_round_trip_is_compact_and_url_safe() -> None:
    token = make_token(KEY, 42, HASH, NOW + 1800.5)
    assert read_token(KEY, token, NOW) == TokenClaims(42, HASH, NOW + 1800)
    assert len(token) <= 110 and "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_every_changed_character_is_refused() -> None:
    token = make_token(KEY, 42, HASH, NOW + 60)
    for at in range(len(token)):
        flipped = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        assert reason(KEY, flipped) == "forged", at


def test_another_key_is_forged() -> None:
    assert reason(b"other" * 8, make_token(KEY, 42, HASH, NOW + 60)) == "forged"


def test_expired() -> None:
    token = make_token(KEY, 42, HASH, NOW)
    assert reason(KEY, token, NOW) == "expired"
    assert read_token(KEY, token, NOW - 1).proposal_id == 42


@pytest.mark.parametrize("token", ["", "abc", "a" * 300, "%2F..", "AAAA=", "ÿÿÿÿ", "A" * 108])
def test_malformed(token: str) -> None:
    assert reason(KEY, token) in ("malformed", "forged")


def test_malformed_is_not_mistaken_for_forged() -> None:
    token = make_token(KEY, 42, HASH, NOW + 60)
    assert reason(KEY, token[:-4]) == "malformed"
    assert reason(KEY, token + "!") == "malformed"


def test_form_proof_is_bound_to_token_and_user() -> None:
    token = make_token(KEY, 42, HASH, NOW + 60)
    proof = form_proof(KEY, token, "alice")
    assert proof_matches(KEY, token, "alice", proof)
    assert not proof_matches(KEY, token, "mallory", proof)
    assert not proof_matches(KEY, make_token(KEY, 43, HASH, NOW + 60), "alice", proof)
    assert not proof_matches(KEY, token, "alice", "")
    # The link's own signature is made for another purpose and does not pass for a form proof.
    assert proof != token[-43:]


async def test_signing_key_is_generated_once_and_shared(engine: AsyncEngine) -> None:
    first = await signing_key(engine, RemediationConfig())
    second = await signing_key(engine, RemediationConfig())
    assert first == second and len(first) >= 32


async def test_configured_signing_key_wins(engine: AsyncEngine) -> None:
    config = RemediationConfig(signing_key=SecretStr("configured-key-0123456789"))
    assert await signing_key(engine, config) == b"configured-key-0123456789"


def test_approval_url() -> None:
    assert approval_url("https://aiops.example.com/", "abc_-") == "https://aiops.example.com/approvals/abc_-"
