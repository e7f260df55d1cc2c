"""service_kit.passwords: pre-hash + bcrypt, off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import bcrypt
import pytest

from service_kit.passwords import PasswordHasher
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
async def hasher() -> AsyncIterator[PasswordHasher]:
    h = PasswordHasher(4)
    yield h
    h.close()


async def test_hash_then_verify(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("correct horse")
    assert hashed.startswith("$2b$04$")
    assert await hasher.verify("correct horse", hashed)
    assert not await hasher.verify("correct horsE", hashed)


async def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert await hasher.hash("same password") != await hasher.hash("same password")


async def test_every_character_of_a_long_password_counts(hasher: PasswordHasher) -> None:
    # Plain bcrypt would ignore everything after byte 72.
    base = "x" * 100
    hashed = await hasher.hash(base + "a")
    assert await hasher.verify(base + "a", hashed)
    assert not await hasher.verify(base + "b", hashed)


async def test_unicode_passwords_are_hashed_as_utf8(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("pässwörd✓")
    assert await hasher.verify("pässwörd✓", hashed)
    assert not await hasher.verify("passwo2rd", hashed)


async def test_plain_bcrypt_of_the_raw_password_does_not_verify(hasher: PasswordHasher) -> None:
    raw = bcrypt.hashpw(b"password1", bcrypt.gensalt(4)).decode()
    assert not await hasher.verify("password1", raw)


@pytest.mark.parametrize("bad", ["", "not a hash", "$2b$04$short", "$2b$04$" + "é" * 53])
async def test_verify_of_a_malformed_hash_is_false(hasher: PasswordHasher, bad: str) -> None:
    assert await hasher.verify("whatever1", bad) is False


async def test_hash_of_another_cost_still_verifies(hasher: PasswordHasher) -> None:
    other = PasswordHasher(5)
    try:
        hashed = await other.hash("password1")
    finally:
        other.close()
    assert await hasher.verify("password1", hashed)


async def test_dummy_verify_takes_about_as_long_as_verify() -> None:
    h = PasswordHasher(8)
    try:
        hashed = await h.hash("password1")
        await h.dummy_verify()  # first call also computes the dummy hash
        start = time.perf_counter()
        await h.verify("password2", hashed)
        real = time.perf_counter() - start
        start = time.perf_counter()
        await h.dummy_verify()
        dummy = time.perf_counter() - start
    finally:
        h.close()
    assert dummy > real / 3


async def test_event_loop_keeps_running_while_hashing() -> None:
    # Not a timing test: hashing runs in threads iff other tasks get turns
    # while it is under way. Each cost-12 hash takes far longer than the
    # ~100 loop turns counted here, on any machine, loaded or not.
    h = PasswordHasher(12)
    try:
        work = asyncio.gather(*(h.hash(f"password{i}") for i in range(2)))
        turns = 0
        while not work.done() and turns < 100:
            await asyncio.sleep(0)
            turns += 1
        assert not work.done(), "hashing finished before the loop got 100 turns"
        await work
    finally:
        h.close()
    assert turns == 100


@pytest.mark.parametrize("cost", [3, 17])
def test_cost_out_of_range_is_refused(cost: int) -> None:
    with pytest.raises(ValueError, match="cost"):
        PasswordHasher(cost)


def test_cost_from_env() -> None:
    assert PasswordHasher.from_env({}).cost == 12
    assert PasswordHasher.from_env({"BCRYPT_COST": "5"}).cost == 5
    for bad in ("3", "17", "x"):
        with pytest.raises(SettingsError, match=r"^BCRYPT_COST"):
            PasswordHasher.from_env({"BCRYPT_COST": bad})
