"""Interaction requests: Ed25519 over timestamp + raw body (the vector from protocols.md §7.1), forgeries and
stale timestamps refused with 401, PING answered PONG, a button press read as who pressed what."""

from __future__ import annotations

import json

import pytest

from aiops.channels.discord.interactions import (
    MESSAGE_COMPONENT,
    PING,
    InteractionRefused,
    Malformed,
    Verifier,
    channel_message,
    deferred_update,
    pong,
    update_message,
)
from tests.fakes.discord import APPLICATION_ID, FakeDiscord
from tests.fakes.robots import Clock

# protocols.md §7.1: seed bytes(range(32)), signed with PyNaCl there; `cryptography` signs the same bytes alike.
VECTOR_KEY = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
VECTOR_SIGNATURE = (
    "c1098e97d711377f30225d53d94b89d43537f92e5b3afaddc590781b1f9f9d4b"
    "2eeab335d370be3b9a090bc61a85b86448bc140dcd195f1569c2bff181257607"
)


def test_the_published_vector_verifies_and_is_a_ping() -> None:
    verifier = Verifier(VECTOR_KEY, clock=lambda: 1_700_000_010)
    headers = {"X-Signature-Ed25519": VECTOR_SIGNATURE, "X-Signature-Timestamp": "1700000000"}
    interaction = verifier.verify(headers, b'{"type":1}')
    assert interaction.type == PING and pong() == {"type": 1}


def test_headers_are_found_whatever_their_case() -> None:
    """Starlette lower-cases header names: the lookup must not depend on the casing Discord sends."""
    verifier = Verifier(VECTOR_KEY, clock=lambda: 1_700_000_000)
    headers = {"x-signature-ed25519": VECTOR_SIGNATURE, "x-signature-timestamp": "1700000000"}
    assert verifier.verify(headers, b'{"type":1}').type == PING


@pytest.mark.parametrize(
    ("raw", "timestamp", "signature"),
    [
        (b'{"type": 1}', "1700000000", VECTOR_SIGNATURE),  # the same JSON, re-serialised: other bytes
        (b'{"type":1}', "1700000001", VECTOR_SIGNATURE),  # another timestamp
        (b'{"type":1}', "1700000000", VECTOR_SIGNATURE[:-2] + "00"),  # a flipped byte
        (b'{"type":1}', "1700000000", "not hex"),
        (b'{"type":1}', "1700000000", ""),
    ],
)
def test_anything_but_the_signed_bytes_is_refused_with_401(
    raw: bytes, timestamp: str, signature: str
) -> None:
    verifier = Verifier(VECTOR_KEY, clock=lambda: 1_700_000_000)
    with pytest.raises(InteractionRefused) as refused:
        verifier.verify({"X-Signature-Ed25519": signature, "X-Signature-Timestamp": timestamp}, raw)
    assert refused.value.status == 401


def test_a_request_signed_by_another_key_is_refused(fake: FakeDiscord, clock: Clock) -> None:
    headers, raw = fake.press("aiops:approve:42", "4001", "5001")
    with pytest.raises(InteractionRefused, match="public_key"):
        Verifier(VECTOR_KEY, clock=clock).verify(headers, raw)


def test_a_stale_request_is_refused_even_when_signed(fake: FakeDiscord, clock: Clock) -> None:
    headers, raw = fake.press("aiops:approve:42", "4001", "5001")
    clock.advance(301)
    with pytest.raises(InteractionRefused, match="clock"):
        Verifier(fake.public_key, clock=clock).verify(headers, raw)


@pytest.mark.parametrize("timestamp", ["nan", "inf", "-1e999", "soon"])
def test_a_timestamp_that_is_no_time_is_refused_even_when_signed(
    fake: FakeDiscord, clock: Clock, timestamp: str
) -> None:
    raw = b'{"type":1}'
    with pytest.raises(InteractionRefused):
        Verifier(fake.public_key, clock=clock).verify(fake.sign(raw, timestamp), raw)


@pytest.mark.parametrize("in_guild", [True, False])
def test_a_button_press_says_who_pressed_what_on_which_message(
    fake: FakeDiscord, clock: Clock, in_guild: bool
) -> None:
    headers, raw = fake.press("aiops:reject:42", "4001", "5001", in_guild=in_guild)
    interaction = Verifier(fake.public_key, clock=clock).verify(headers, raw)
    assert interaction.type == MESSAGE_COMPONENT and interaction.application_id == APPLICATION_ID
    assert (interaction.user_id, interaction.custom_id, interaction.message_id) == (
        "4001",
        "aiops:reject:42",
        "5001",
    )
    assert interaction.token == json.loads(raw)["token"]


def test_a_signed_body_that_is_not_an_interaction_is_malformed(fake: FakeDiscord, clock: Clock) -> None:
    timestamp = str(int(clock()))
    with pytest.raises(Malformed):
        Verifier(fake.public_key, clock=clock).verify(fake.sign(b"[1, 2]", timestamp), b"[1, 2]")


def test_a_bad_public_key_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="public_key"):
        Verifier("abc")


def test_responses_have_discords_types() -> None:
    assert deferred_update() == {"type": 6}
    assert update_message({"content": "done"}) == {"type": 7, "data": {"content": "done"}}
    assert channel_message({"content": "no"}, ephemeral=True) == {
        "type": 4,
        "data": {"content": "no", "flags": 64},
    }
