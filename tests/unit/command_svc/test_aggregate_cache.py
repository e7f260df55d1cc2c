"""The aggregate cache alone, and CommandHandler with it against an in-memory store.

"Another instance" is a second CommandHandler on the same FakeStore, with
its own cache (or none): it moves the stream behind our cache's back.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import grpc
import pytest

import domain
from command_svc.aggregate_cache import AggregateCache
from command_svc.handlers import CommandHandler
from command_svc.store_client import Loaded, Trace
from service_kit.errors import ServiceError

from .fakes import FakeHasher, FakeStore

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACE = Trace(correlation_id="corr-1", causation_id="cmd-1")
PASSWORD = "password-1"


def make(
    store: FakeStore | None = None,
    *,
    size: int = 100,
    attempts: int = 5,
) -> tuple[CommandHandler, FakeStore, FakeHasher, AggregateCache]:
    store = store or FakeStore()
    hasher = FakeHasher()
    cache = AggregateCache(size)
    handler = CommandHandler(
        store=store,
        hasher=hasher,
        max_attempts=attempts,
        clock=lambda: NOW,
        retry_pause=0,
        cache=cache,
    )
    return handler, store, hasher, cache


async def registered(handler: CommandHandler, email: str = "ann@example.com") -> str:
    return (await handler.register(email=email, password=PASSWORD, trace=TRACE)).user_id


def state(user_id: str = "u1", version: int = 1) -> domain.UserState:
    return domain.UserState(
        user_id=user_id,
        email=f"{user_id}@example.com",
        role=domain.ROLE_USER,
        status=domain.UserStatus.ACTIVE,
        version=version,
        created_at=NOW,
        updated_at=NOW,
        password_hash="h",
    )


def cached_version(cache: AggregateCache, user_id: str) -> int | None:
    entry = cache.get(user_id)
    return None if entry is None else entry.version


# -- the cache alone ----------------------------------------------------------


def test_cache_returns_what_was_put() -> None:
    cache = AggregateCache(2)
    assert cache.get("u1") is None
    s = state()
    cache.put("u1", s, 1)
    assert cache.get("u1") == (s, 1)
    assert len(cache) == 1


def test_cache_evicts_the_least_recently_used() -> None:
    cache = AggregateCache(2)
    cache.put("u1", state("u1"), 1)
    cache.put("u2", state("u2"), 1)
    assert cache.get("u1") is not None  # u2 is now the least recently used
    cache.put("u3", state("u3"), 1)
    assert len(cache) == 2
    assert cache.get("u2") is None
    assert cache.get("u1") is not None and cache.get("u3") is not None


def test_cache_of_size_zero_holds_nothing() -> None:
    cache = AggregateCache(0)
    cache.put("u1", state(), 1)
    assert cache.get("u1") is None
    assert len(cache) == 0


def test_cache_put_keeps_the_higher_version() -> None:
    cache = AggregateCache(2)
    cache.put("u1", state(version=3), 3)
    cache.put("u1", state(version=2), 2)
    assert cached_version(cache, "u1") == 3
    cache.put("u1", state(version=4), 4)
    assert cached_version(cache, "u1") == 4


def test_cache_put_of_a_state_at_another_version_forgets_the_user() -> None:
    cache = AggregateCache(2)
    cache.put("u1", state(version=2), 2)
    cache.put("u1", state(version=2), 5)
    assert cache.get("u1") is None


def test_cache_discard_drops_only_the_stale_version_or_older() -> None:
    cache = AggregateCache(2)
    cache.put("u1", state(version=3), 3)
    cache.discard("u1", 2)  # an older version proved stale: ours is newer
    assert cached_version(cache, "u1") == 3
    cache.discard("u1", 3)
    assert cache.get("u1") is None
    cache.discard("unknown", 1)


def test_cache_capacity_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        AggregateCache(-1)


# -- the handler with a cache -------------------------------------------------


async def test_registration_is_cached_and_later_commands_do_not_load() -> None:
    handler, store, _, cache = make()
    uid = await registered(handler)
    assert cached_version(cache, uid) == 1
    await handler.change_email(user_id=uid, new_email="b@example.com", trace=TRACE)
    out = await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert out.version == 3
    assert store.loads == 0
    assert cached_version(cache, uid) == 3
    assert [call.expected_version for call in store.appends] == [0, 1, 2]


async def test_a_second_command_on_a_loaded_user_does_not_load() -> None:
    other, store, _, _ = make(size=0)
    uid = await registered(other)
    handler, _, _, cache = make(store)
    await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert store.loads == 1
    await handler.record_login(user_id=uid, client_address="y", trace=TRACE)
    assert store.loads == 1
    assert cached_version(cache, uid) == 3


async def test_stale_entry_is_aborted_reloaded_and_appended_once() -> None:
    handler, store, _, cache = make()
    uid = await registered(handler)  # cached at version 1
    other, _, _, _ = make(store)
    await other.record_login(user_id=uid, client_address="elsewhere", trace=TRACE)
    appends_before, loads_before = len(store.appends), store.loads

    out = await handler.change_email(user_id=uid, new_email="b@example.com", trace=TRACE)

    assert out.version == 3
    assert [c.expected_version for c in store.appends[appends_before:]] == [1, 2]
    assert store.loads - loads_before == 1  # the reload after ABORTED
    stream = store.streams[uid]
    assert [e.version for e in stream] == [1, 2, 3]
    assert sum(isinstance(e, domain.EmailChanged) for e in stream) == 1
    assert cached_version(cache, uid) == 3


async def test_conflict_drops_the_entry_so_the_retry_loads() -> None:
    handler, store, _, cache = make(attempts=2)
    uid = await registered(handler)
    store.conflicts = 3
    with pytest.raises(ServiceError) as info:
        await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert info.value.code == grpc.StatusCode.ABORTED
    # The cached decision's conflict is forgiven once; the two counted
    # attempts then both loaded (neither trusted the cache).
    assert store.loads == 2
    assert cache.get(uid) is None  # the last conflict dropped the reloaded entry too


async def test_a_conflict_of_a_cached_decision_does_not_use_up_an_attempt() -> None:
    handler, store, _, _ = make(attempts=1)
    uid = await registered(handler)
    store.conflicts = 1  # e.g. another instance wrote behind our cache
    out = await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert out.version == 2 and store.loads == 1
    store.conflicts = 2  # a real race after a fresh load still counts
    with pytest.raises(ServiceError) as info:
        await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert info.value.code == grpc.StatusCode.ABORTED


async def test_refusal_on_a_stale_cached_email_is_redecided_on_fresh_state() -> None:
    # attempts=1: the re-decision is not an attempt of its own.
    handler, store, _, cache = make(attempts=1)
    uid = await registered(handler, "x@example.com")
    other, _, _, _ = make(store)
    await other.change_email(user_id=uid, new_email="y@example.com", trace=TRACE)
    appends_before, loads_before = len(store.appends), store.loads

    # Our cache still says x: "same as the current email", but the store says y.
    out = await handler.change_email(user_id=uid, new_email="x@example.com", trace=TRACE)

    assert (out.version, out.state.email) == (3, "x@example.com")
    assert store.loads - loads_before == 1
    [call] = store.appends[appends_before:]  # decided on fresh state: no ABORTED
    assert call.expected_version == 2
    assert store.claims == {"x@example.com": uid}
    assert cached_version(cache, uid) == 3


async def test_wrong_old_password_on_a_stale_cache_is_verified_against_the_fresh_hash() -> None:
    handler, store, hasher, _ = make()
    uid = await registered(handler)
    other, _, _, _ = make(store)
    await other.change_password(
        user_id=uid, old_password=PASSWORD, new_password="password-2", trace=TRACE
    )
    loads_before = store.loads

    out = await handler.change_password(
        user_id=uid, old_password="password-2", new_password="password-3", trace=TRACE
    )

    assert out.version == 3
    assert out.state.password_hash == "hashed:password-3"
    assert store.loads - loads_before == 1
    assert hasher.verifies == 2  # the cached hash, then the fresh one: once each
    assert hasher.hashes == 2  # registration, then the new password once


async def test_refusal_on_fresh_state_reaches_the_caller_without_a_second_bcrypt() -> None:
    handler, store, hasher, cache = make()
    uid = await registered(handler)
    with pytest.raises(domain.InvalidCredentials):
        await handler.change_password(
            user_id=uid, old_password="wrong-pass", new_password="password-2", trace=TRACE
        )
    assert store.loads == 1  # the cached refusal was checked against the store once
    assert hasher.verifies == 1  # same stored hash: the verdict was reused
    assert len(store.appends) == 1  # only the registration
    assert cached_version(cache, uid) == 1  # the reload cached the fresh state


async def test_deactivated_elsewhere_is_reported_from_the_store() -> None:
    handler, store, _, _ = make()
    uid = await registered(handler)
    other, _, _, _ = make(store)
    await other.deactivate(user_id=uid, reason="left", trace=TRACE)
    with pytest.raises(domain.UserDeactivatedError):
        await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    with pytest.raises(domain.UserDeactivatedError):
        await handler.change_email(user_id=uid, new_email="b@example.com", trace=TRACE)
    assert len(store.streams[uid]) == 2


async def test_unknown_user_is_never_cached() -> None:
    handler, store, _, cache = make()
    uid = str(uuid.uuid4())
    for _ in range(2):
        with pytest.raises(domain.UserNotFound):
            await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert store.loads == 2
    assert len(cache) == 0


async def test_handler_cache_is_bounded_lru() -> None:
    other, store, _, _ = make(size=0)
    uids = [await registered(other, f"u{i}@example.com") for i in range(3)]
    handler, _, _, cache = make(store, size=2)
    for uid in uids:
        await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert (store.loads, len(cache)) == (3, 2)
    await handler.record_login(user_id=uids[2], client_address="x", trace=TRACE)
    assert store.loads == 3  # still cached
    await handler.record_login(user_id=uids[0], client_address="x", trace=TRACE)
    assert store.loads == 4  # evicted first


async def test_size_zero_disables_the_cache() -> None:
    handler, store, _, cache = make(size=0)
    uid = await registered(handler)
    for _ in range(3):
        await handler.record_login(user_id=uid, client_address="x", trace=TRACE)
    assert store.loads == 3
    assert len(cache) == 0


async def test_the_higher_version_wins_when_two_commands_race() -> None:
    other, store, _, _ = make(size=0)
    uid = await registered(other)
    handler, _, _, cache = make(store)
    real_load = store.load
    first_loaded, release = asyncio.Event(), asyncio.Event()

    async def slow_first_load(user_id: str) -> Loaded:
        loaded = await real_load(user_id)
        if not first_loaded.is_set():
            first_loaded.set()
            await release.wait()  # the store read version 1; the reply is slow
        return loaded

    store.load = slow_first_load  # type: ignore[method-assign]
    slow = asyncio.create_task(
        handler.record_login(user_id=uid, client_address="slow", trace=TRACE)
    )
    await first_loaded.wait()
    fast = await handler.record_login(user_id=uid, client_address="fast", trace=TRACE)
    assert fast.version == 2 and cached_version(cache, uid) == 2
    release.set()
    out = await slow

    # The slow load's version 1 did not replace version 2, and its ABORTED
    # did not drop it: the retry used the cached version 2 without loading.
    assert out.version == 3
    assert store.loads == 2
    assert [c.expected_version for c in store.appends] == [0, 1, 1, 2]
    assert cached_version(cache, uid) == 3


async def test_outcome_state_is_what_gets_cached() -> None:
    handler, _, _, cache = make()
    uid = await registered(handler)
    out = await handler.deactivate(user_id=uid, reason="done", trace=TRACE)
    entry = cache.get(uid)
    assert entry is not None
    assert entry == (out.state, out.version)
