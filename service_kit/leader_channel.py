"""A gRPC channel to a service of which one of several addresses serves: the event
store's leader and its hot standby (``STORE_GRPC_TARGET=leader:9090,standby:9090``).

:func:`leader_channel` gives a plain channel for one address (nothing changes
for a single-store deployment) and a :class:`LeaderChannel` for several. A
LeaderChannel holds one channel per address and sends every call to the
*current* one; it moves to the next address when the current one answers
UNAVAILABLE (a standby waiting for the writer lease, a leader that stepped
down, a process that is gone) or does not answer at all (a paused process):

- a unary call is retried on the next address, within the caller's timeout,
  until every address was tried twice. Each try but the last gets half of
  the time left, so a paused leader costs half the budget, not all of it.
  Retrying is safe for every unary method of the event store: reads change
  nothing, and ``Append`` carries its event ids (a resent append that was in
  fact stored returns the first result; store_svc.engine's idempotency);
- a streaming call (``Subscribe``, ``AppendStream``) is opened on the current
  address and not retried here: its callers already reconnect (and resume or
  resend). When it ends UNAVAILABLE the channel moves on, so the reconnect
  lands on the next address. Keepalive pings (every few seconds while calls
  are open) turn a paused peer into UNAVAILABLE instead of a silent hang.

Where the current address moves to: the next address that has not gone
*silent* (a try on it ran out of time without any answer, or found no
connection) in the last ``_SILENT_HOLD`` seconds. A paused leader is so not
tried again while the standby takes over: when the standby still says "not the leader", calls stay
on it (it answers, the paused leader does not); when the new leader's first
answer is slow, calls stay on it if its connection is up and the old leader's
is not.

Invariant: the current address moves only away from the address that failed
(compare-and-move), so many calls failing at once on one address move it
once, not once each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, cast

import grpc

__all__ = ["LeaderChannel", "leader_channel", "split_targets", "unreached"]

log = logging.getLogger(__name__)

# Reconnect quickly: an address that refused (a standby not serving yet) must be
# tried again within a second once it serves, not after gRPC's default backoff
# (which grows to two minutes). The minimum is also the connect timeout: a
# paused peer, whose kernel still accepts the TCP connection, fails in 1 s.
_FAILOVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 1000),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # A peer that stops answering pings for 3 s while calls are open is gone:
    # its calls fail UNAVAILABLE (servers allow pings this often:
    # service_kit.server).
    ("grpc.keepalive_time_ms", 3000),
    ("grpc.keepalive_timeout_ms", 3000),
)
_ROUND_PAUSE = 0.2  # between two rounds over every address: a standby may be taking over
# How long an address that went silent is passed over while another one answers.
# Long enough for a standby to take the lease over (calls that find it still
# waiting stay on it), short enough that a leader back from a stall is used again.
_SILENT_HOLD = 5.0
_ROUNDS = 2

Options = Sequence[tuple[str, Any]]

# What gRPC's core says when the peer reset a call mid-way (a server stopping
# cancels its calls so): the call ended in the transport, the server did not
# refuse it. Seen when a standby's refusing server makes way for the real one.
_RESET_BY_PEER = "Internal error from Core"


def unreached(code: grpc.StatusCode | None, details: str) -> bool:
    """The call ended before the server answered it: UNAVAILABLE, or reset by the peer.
    Trying again (elsewhere) is what to do; the request may or may not have arrived."""
    return code == grpc.StatusCode.UNAVAILABLE or (
        code == grpc.StatusCode.INTERNAL and details.endswith(_RESET_BY_PEER)
    )


def split_targets(value: str) -> tuple[str, ...]:
    """``host:port[,host:port...]`` as a tuple of addresses (blanks dropped)."""
    return tuple(t.strip() for t in value.split(",") if t.strip())


def leader_channel(
    targets: str | Sequence[str],
    *,
    options: Options = (),
    interceptors: Sequence[Any] | None = None,
) -> grpc.aio.Channel:
    """A channel to ``targets``: plain for one address, a :class:`LeaderChannel` for several."""
    addresses = split_targets(targets) if isinstance(targets, str) else tuple(targets)
    if len(addresses) == 1:
        return grpc.aio.insecure_channel(
            addresses[0], options=list(options), interceptors=interceptors
        )
    return LeaderChannel(addresses, options=options, interceptors=interceptors)


class LeaderChannel(grpc.aio.Channel):
    """One channel per address; calls go to the current one (see the module docstring)."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        options: Options = (),
        interceptors: Sequence[Any] | None = None,
    ) -> None:
        if not targets:
            raise ValueError("a LeaderChannel needs at least one address")
        self.targets = tuple(targets)
        merged = [*options, *_FAILOVER_OPTIONS]
        self._channels = [
            grpc.aio.insecure_channel(t, options=merged, interceptors=interceptors)
            for t in self.targets
        ]
        self._current = 0
        self._silent_at: list[float | None] = [None] * len(self.targets)
        self._settling: set[asyncio.Task[None]] = set()

    @property
    def tries(self) -> int:
        """How many tries a call that can be retried gets: every address, twice."""
        return _ROUNDS * len(self.targets)

    @staticmethod
    def try_budget(left: float, attempt: int, tries: int) -> float:
        """The time try ``attempt`` (1-based) of ``tries`` may take, of ``left``: half of
        it but for the last, so that a peer that does not answer costs half of what is left."""
        return left if attempt >= tries else left / 2

    @property
    def current(self) -> int:
        """The index of the address new calls go to."""
        return self._current

    def failed(self, index: int, why: str, *, silent: bool = False) -> None:
        """Moves new calls away from ``index``, if it is still the current address.

        ``silent``: the try got no answer at all (not a refusal): it ran out of time,
        or there was no connection to send it on."""
        if silent:
            self._silent_at[index] = time.monotonic()
        if index != self._current:
            return  # another call already moved on
        self._current = self._next_after(index, answered=not silent)
        if self._current == index:
            log.warning(
                "%s failed (%s); the others are silent, calls stay", self.targets[index], why
            )
            return
        log.warning(
            "%s failed (%s); calls go to %s now",
            self.targets[index],
            why,
            self.targets[self._current],
        )

    def _recently_silent(self, index: int) -> bool:
        at = self._silent_at[index]
        return at is not None and time.monotonic() - at < _SILENT_HOLD

    def _ready(self, index: int) -> bool:
        return self._channels[index].get_state() == grpc.ChannelConnectivity.READY

    def _next_after(self, index: int, *, answered: bool) -> int:
        """Where calls go after ``index`` failed (see the module docstring)."""
        others = [(index + k) % len(self.targets) for k in range(1, len(self.targets))]
        for other in others:
            if not self._recently_silent(other):
                return other
        if answered:
            return index  # it refuses, but it answers: the others did not
        for candidate in [*others, index]:
            if self._ready(candidate):
                return candidate
        return others[0] if others else index

    # -- grpc.aio.Channel ---------------------------------------------------

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        callables = [
            c.unary_unary(method, request_serializer, response_deserializer) for c in self._channels
        ]
        return _RetryingUnaryUnary(self, callables)

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        callables = [
            c.unary_stream(method, request_serializer, response_deserializer)
            for c in self._channels
        ]
        return cast(grpc.aio.UnaryStreamMultiCallable[Any, Any], _Following(self, callables))

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        callables = [
            c.stream_unary(method, request_serializer, response_deserializer)
            for c in self._channels
        ]
        return cast(grpc.aio.StreamUnaryMultiCallable[Any, Any], _Following(self, callables))

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        callables = [
            c.stream_stream(method, request_serializer, response_deserializer)
            for c in self._channels
        ]
        return cast(grpc.aio.StreamStreamMultiCallable[Any, Any], _Following(self, callables))

    async def close(self, grace: float | None = None) -> None:
        for channel in self._channels:
            await channel.close(grace)
        for task in list(self._settling):
            task.cancel()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channels[self._current].get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channels[self._current].wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channels[self._current].channel_ready()

    async def __aenter__(self) -> LeaderChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)

    # -- internals ----------------------------------------------------------

    def _watch(self, index: int, call: Any) -> None:
        """Moves on when a streaming call opened on ``index`` ends UNAVAILABLE."""

        def done(_call: Any) -> None:
            task = asyncio.ensure_future(self._settle(index, call))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

        call.add_done_callback(done)

    async def _settle(self, index: int, call: Any) -> None:
        code, details = await call.code(), await call.details()
        if unreached(code, details or ""):
            self.failed(index, f"{code.name}: {details}")

    async def _unary(
        self,
        holder: _RetryingCall,
        callables: Sequence[grpc.aio.UnaryUnaryMultiCallable[Any, Any]],
        request: Any,
        seconds: float | None,
        kwargs: dict[str, Any],
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        tries = self.tries
        for attempt in range(1, tries + 1):
            index = self._current
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            last = attempt == tries
            this_try = None if left is None else self.try_budget(left, attempt, tries)
            call = callables[index](request, timeout=this_try, **kwargs)
            holder.last = call
            try:
                return await call
            except grpc.aio.AioRpcError as err:
                code = err.code()
                cut_short = code == grpc.StatusCode.DEADLINE_EXCEEDED and this_try != left
                # CANCELLED here was not our caller (that cancels this task): the
                # server cancelled it, e.g. a standby's server making way.
                cancelled = code == grpc.StatusCode.CANCELLED
                if last or not (unreached(code, err.details() or "") or cut_short or cancelled):
                    raise
                # No answer in time, or no connection (refused, or not set up in
                # time: a paused process accepts TCP but never speaks HTTP/2).
                silent = cut_short or not self._ready(index)
                self.failed(index, f"{code.name}: {err.details()}", silent=silent)
                if deadline is not None and deadline - loop.time() <= 0.01:
                    raise
            if attempt % len(self.targets) == 0:
                await asyncio.sleep(_ROUND_PAUSE)
        raise AssertionError("unreachable")  # pragma: no cover


class _Following:
    """A streaming multi-callable: opens the call on the current address and watches it."""

    def __init__(self, leader: LeaderChannel, callables: Sequence[Any]) -> None:
        self._leader = leader
        self._callables = callables

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        index = self._leader.current
        call = self._callables[index](*args, **kwargs)
        self._leader._watch(index, call)
        return call


class _RetryingUnaryUnary(grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    def __init__(
        self,
        leader: LeaderChannel,
        callables: Sequence[grpc.aio.UnaryUnaryMultiCallable[Any, Any]],
    ) -> None:
        self._leader = leader
        self._callables = callables

    def __call__(  # type: ignore[override]  # keyword-only, as in grpc itself
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        kwargs: dict[str, Any] = {
            "metadata": metadata,
            "credentials": credentials,
            "wait_for_ready": wait_for_ready,
            "compression": compression,
        }
        return _RetryingCall(
            lambda holder: self._leader._unary(holder, self._callables, request, timeout, kwargs),
            timeout,
        )


class _RetryingCall(grpc.aio.UnaryUnaryCall[Any, Any]):
    """A unary call made of tries; its status and metadata are those of the last try."""

    def __init__(self, run: Callable[[_RetryingCall], Any], timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = None if timeout is None else loop.time() + timeout
        self.last: grpc.aio.UnaryUnaryCall[Any, Any] | None = None
        self._task: asyncio.Future[Any] = asyncio.ensure_future(run(self))

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()

    async def _settled(self) -> grpc.aio.UnaryUnaryCall[Any, Any] | None:
        await asyncio.wait([self._task])
        return self.last

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(self._deadline - asyncio.get_running_loop().time(), 0.0)

    def cancel(self) -> bool:
        if self._task.done():
            return False
        if self.last is not None:
            self.last.cancel()
        return self._task.cancel()

    def add_done_callback(self, callback: Any) -> None:
        self._task.add_done_callback(lambda _task: callback(self))

    async def initial_metadata(self) -> Any:
        last = await self._settled()
        return None if last is None else await last.initial_metadata()

    async def trailing_metadata(self) -> Any:
        last = await self._settled()
        return None if last is None else await last.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        last = await self._settled()
        if last is None or self._task.cancelled():
            return grpc.StatusCode.CANCELLED
        return await last.code()

    async def details(self) -> str:
        last = await self._settled()
        return "" if last is None else str(await last.details())

    async def wait_for_connection(self) -> None:
        last = await self._settled()
        if last is not None:
            await last.wait_for_connection()
