"""Seeded simulation of N writer partitions and the e-mail claim protocol (docs/scaling.md).

Discrete events on a simulated clock, one ``random.Random(seed)`` for every choice:
the same arguments print the same figures. What runs:

- N partitions of aggregate ids (``hash(aggregate) mod N``), each with one writer at
  a time. A writer holds a lease with an epoch (fencing token), takes a batch of
  appends from its queue, and commits it after a batch latency. The commit is a
  compare-and-set on the partition's highest epoch: a writer that was superseded
  writes nothing and steps down. Event ids are idempotent: a resent append that is
  already stored is acknowledged with its first position.
- A claims partition: ``reserve(email)`` grants a reservation with an expiry if the
  address is free; a reservation that expired is *settled* first: the aggregate's
  partition is asked for an event carrying it (found: the address is claimed for
  good; not found: it is free again). A partition refuses, at commit time, a
  registration whose reservation has expired, so after the expiry the settle's
  answer is final.
- Clients register (reserve, maybe stall past the expiry, append the user's first
  event with the reservation) or append to users they registered; on no answer they
  resend the same event id to the partition's current writer.
- Faults: a writer pauses mid-batch past the lease TTL (a standby takes over with the
  next epoch; the paused one resumes as a zombie and tries its batch); a writer
  crashes mid-batch (its batch stored or not, never acknowledged; a standby takes
  over after the TTL); reservations expire under stalled clients.

The checker reads what a reader would (per position, the row of the highest epoch)
and reports: an acknowledged event missing, stored twice or not at its acknowledged
position; a position holding two different events; an e-mail address held by two
users. ``--broken no-fencing`` (commits without the epoch check) and
``--broken no-expiry-check`` (partitions accept expired reservations) show that the
checker catches what each guard prevents.

Reproduce: ``.venv/bin/python -m bench.partition_sim --partitions 1,2,4,8 --seed 1``.
Throughput is in simulated time (batch latency ``--batch-ms``), so it measures the
protocol's scaling, not this machine.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

BROKEN_VARIANTS = ("no-fencing", "no-expiry-check")


@dataclass(frozen=True, slots=True)
class Params:
    """Knobs of one run; times in simulated seconds."""

    partitions: int = 4
    seed: int = 1
    duration: float = 1.0
    clients_per_partition: int = 24
    register_share: float = 0.3  # of client operations; the rest append to own users
    hot_emails: int = 50  # a share of registrations want one of these: contention
    hot_share: float = 0.2
    batch_latency: float = 0.005
    batch_max: int = 200
    claims_latency: float = 0.002
    lease_ttl: float = 0.05
    reservation_ttl: float = 0.03
    client_timeout: float = 0.03
    stall_share: float = 0.05  # registrations that stall past the reservation's expiry
    pause_share: float = 0.004  # batches whose writer pauses past the lease TTL
    crash_share: float = 0.004  # batches whose writer crashes at commit
    fencing: bool = True
    expiry_check: bool = True


@dataclass(frozen=True, slots=True)
class Row:
    position: int
    epoch: int
    event_id: str
    aggregate: str
    email: str = ""  # set on a registration
    reservation: int = 0


@dataclass(slots=True)
class Append:
    event_id: str
    aggregate: str
    email: str = ""
    reservation: int = 0
    expires: float = 0.0
    reply: Callable[[str, int], None] = lambda outcome, position: None


class Storage:
    """One partition's rows and the highest lease epoch taken on it."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.epoch = 0

    def commit(self, epoch: int, rows: list[Row], fenced: bool) -> bool:
        if fenced and epoch != self.epoch:
            return False
        self.rows.extend(rows)
        return True

    def visible(self) -> dict[int, Row]:
        """What a reader sees: at each position the row of the highest epoch."""
        best: dict[int, Row] = {}
        for row in self.rows:
            if row.position not in best or row.epoch > best[row.position].epoch:
                best[row.position] = row
        return best


@dataclass(slots=True)
class Writer:
    partition: int
    epoch: int
    next_position: int
    seen: dict[str, int]  # event id -> position, as loaded and written
    queue: list[Append] = field(default_factory=list)
    busy: bool = False
    dead: bool = False
    paused_until: float = 0.0
    silent_since: float | None = None  # when it stopped renewing its lease


@dataclass(slots=True)
class Reservation:
    number: int
    aggregate: str
    expires: float
    claimed: bool = False


@dataclass(slots=True)
class Stats:
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (partition, pos)
    registered: int = 0
    refused_emails: int = 0
    expired: int = 0
    takeovers: int = 0
    pauses: int = 0
    crashes: int = 0
    zombie_refusals: int = 0
    claims_busy: float = 0.0


class Simulation:
    def __init__(self, params: Params) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.storage = [Storage() for _ in range(params.partitions)]
        self.leaders = [self._take_over(i) for i in range(params.partitions)]
        self.claims: dict[str, Reservation] = {}
        self._claims_queue: list[Callable[[], None]] = []
        self._claims_busy = False
        self._reservations = itertools.count(1)
        self._ids = itertools.count(1)
        self.stats = Stats()

    # -- scheduling ---------------------------------------------------------

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), action))

    def run(self) -> Stats:
        for client in range(self.p.clients_per_partition * self.p.partitions):
            self.at(self.rng.uniform(0, 0.005), partial(self._client_step, client, []))
        self.at(self.p.lease_ttl / 5, self._watch_leases)
        while self._events and self._events[0][0] <= self.p.duration:
            self.now, _, action = heapq.heappop(self._events)
            action()
        return self.stats

    # -- partitions ---------------------------------------------------------

    def partition_of(self, aggregate: str) -> int:
        return zlib.crc32(aggregate.encode()) % self.p.partitions

    def _take_over(self, partition: int) -> Writer:
        """A new writer: the next epoch, state loaded from what readers see."""
        storage = self.storage[partition]
        storage.epoch += 1
        visible = storage.visible()
        return Writer(
            partition=partition,
            epoch=storage.epoch,
            next_position=max(visible, default=0) + 1,
            seen={row.event_id: pos for pos, row in visible.items()},
        )

    def _watch_leases(self) -> None:
        for i, writer in enumerate(self.leaders):
            if writer.silent_since is not None and (
                self.now - writer.silent_since >= self.p.lease_ttl
            ):
                self.leaders[i] = self._take_over(i)
                self.stats.takeovers += 1
        self.at(self.p.lease_ttl / 5, self._watch_leases)

    def send(self, request: Append) -> None:
        writer = self.leaders[self.partition_of(request.aggregate)]
        if writer.dead:
            return  # lost; the client resends after its timeout
        writer.queue.append(request)
        self._start_batch(writer)

    def _start_batch(self, writer: Writer) -> None:
        if writer.busy or writer.dead or not writer.queue or writer.paused_until > self.now:
            return
        batch, writer.queue = writer.queue[: self.p.batch_max], writer.queue[self.p.batch_max :]
        writer.busy = True
        delay = self.p.batch_latency + len(batch) * 0.00001
        if self.rng.random() < self.p.pause_share:
            # Paused between building the batch and its INSERT, past the lease TTL.
            self.stats.pauses += 1
            writer.silent_since = self.now
            writer.paused_until = self.now + self.p.lease_ttl * self.rng.uniform(1.5, 3.0)
            delay = writer.paused_until - self.now
        self.at(delay, lambda: self._commit(writer, batch))

    def _commit(self, writer: Writer, batch: list[Append]) -> None:
        writer.busy = False
        if writer.dead:
            return
        if writer.paused_until and writer.paused_until <= self.now:
            writer.paused_until = 0.0  # resumed: renews its lease if it still can
            if self.leaders[writer.partition] is writer:
                writer.silent_since = None
        answers: list[tuple[Append, str, int]] = []
        rows: list[Row] = []
        position = writer.next_position
        for request in batch:
            if request.event_id in writer.seen:  # a resend: the first result
                answers.append((request, "ok", writer.seen[request.event_id]))
            elif self.p.expiry_check and request.reservation and request.expires <= self.now:
                answers.append((request, "expired", 0))
            else:
                rows.append(
                    Row(
                        position,
                        writer.epoch,
                        request.event_id,
                        request.aggregate,
                        request.email,
                        request.reservation,
                    )
                )
                answers.append((request, "ok", position))
                position += 1
        if self.rng.random() < self.p.crash_share:
            self.stats.crashes += 1
            if self.rng.random() < 0.5:  # the INSERT landed; the ack never left
                self.storage[writer.partition].commit(writer.epoch, rows, self.p.fencing)
            writer.dead, writer.silent_since = True, self.now
            return
        if not self.storage[writer.partition].commit(writer.epoch, rows, self.p.fencing):
            self.stats.zombie_refusals += 1
            writer.dead = True  # superseded: steps down, acknowledges nothing
            return
        for row in rows:
            writer.seen[row.event_id] = row.position
        writer.next_position = position
        for request, outcome, pos in answers:
            request.reply(outcome, pos)
        self._start_batch(writer)

    # -- the claims partition -------------------------------------------------

    def reserve(self, email: str, aggregate: str, reply: Callable[[int, float], None]) -> None:
        """Grants (number, expiry), or (0, 0) when the address is held."""

        def decide() -> None:
            held = self.claims.get(email)
            if held is not None and not held.claimed and held.expires <= self.now:
                if self._landed(held):
                    held.claimed = True
                else:
                    held = None  # expired and never used: free again
            if held is not None:
                reply(0, 0.0)
                return
            number = next(self._reservations)
            expires = self.now + self.p.reservation_ttl
            self.claims[email] = Reservation(number, aggregate, expires)
            reply(number, expires)

        self._claims_queue.append(decide)
        self._claims_next()

    def _landed(self, reservation: Reservation) -> bool:
        """Settle: did the aggregate's partition store an event carrying the reservation?"""
        storage = self.storage[self.partition_of(reservation.aggregate)]
        return any(r.reservation == reservation.number for r in storage.visible().values())

    def _claims_next(self) -> None:
        if self._claims_busy or not self._claims_queue:
            return
        batch, self._claims_queue = self._claims_queue, []
        self._claims_busy = True
        self.stats.claims_busy += self.p.claims_latency

        def done() -> None:
            self._claims_busy = False
            for decide in batch:
                decide()
            self._claims_next()

        self.at(self.p.claims_latency, done)

    # -- clients ------------------------------------------------------------

    def _client_step(self, client: int, users: list[str]) -> None:
        if self.rng.random() < self.p.register_share or not users:
            self._register(client, users)
        else:
            self._append(client, users, self.rng.choice(users))

    def _register(self, client: int, users: list[str]) -> None:
        aggregate = f"c{client}-{next(self._ids)}"
        if self.rng.random() < self.p.hot_share:
            email = f"hot{self.rng.randrange(self.p.hot_emails)}@example.com"
        else:
            email = f"{aggregate}@example.com"

        def reserved(number: int, expires: float) -> None:
            if number == 0:
                self.stats.refused_emails += 1
                self.at(0.001, lambda: self._client_step(client, users))
                return
            stall = 0.0
            if self.rng.random() < self.p.stall_share:
                stall = self.p.reservation_ttl * self.rng.uniform(1.1, 2.0)
            self.at(
                stall,
                lambda: self._append(
                    client, users, aggregate, email=email, reservation=number, expires=expires
                ),
            )

        self.reserve(email, aggregate, reserved)

    def _append(
        self,
        client: int,
        users: list[str],
        aggregate: str,
        *,
        email: str = "",
        reservation: int = 0,
        expires: float = 0.0,
    ) -> None:
        event_id = f"e{next(self._ids)}"
        answered = False

        def reply(outcome: str, position: int) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            if outcome == "ok":
                self.stats.acked[event_id] = (self.partition_of(aggregate), position)
                if email:
                    self.stats.registered += 1
                    users.append(aggregate)
            else:
                self.stats.expired += 1
            self.at(0.0005, lambda: self._client_step(client, users))

        request = Append(event_id, aggregate, email, reservation, expires, reply)

        def attempt() -> None:
            if answered:
                return
            self.send(request)
            self.at(self.p.client_timeout, attempt)  # no answer yet: resend, same id

        attempt()


def check(sim: Simulation) -> list[str]:
    """Every violation of exactly-once and of e-mail uniqueness, as readers see the log."""
    problems: list[str] = []
    emails: Counter[str] = Counter()
    for partition, storage in enumerate(sim.storage):
        by_position: dict[int, set[str]] = {}
        for row in storage.rows:
            by_position.setdefault(row.position, set()).add(row.event_id)
        for position, ids in sorted(by_position.items()):
            if len(ids) > 1:
                problems.append(f"partition {partition} position {position} holds {len(ids)}")
        visible = storage.visible()
        stored = Counter(row.event_id for row in visible.values())
        for event_id, (p, position) in sim.stats.acked.items():
            if p != partition:
                continue
            if stored[event_id] != 1:
                problems.append(f"acked {event_id} visible {stored[event_id]} times")
            elif visible[position].event_id != event_id:
                problems.append(f"acked {event_id} not at its position {position}")
        problems.extend(f"{event_id} stored {n} times" for event_id, n in stored.items() if n > 1)
        emails.update(row.email for row in visible.values() if row.email)
    problems.extend(f"{email} held by {n} users" for email, n in emails.items() if n > 1)
    return problems


def simulate(params: Params) -> tuple[Stats, list[str]]:
    sim = Simulation(params)
    stats = sim.run()
    return stats, check(sim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", default="1,2,4,8", help="comma-separated N values")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=1.0, help="simulated seconds")
    parser.add_argument("--batch-ms", type=float, default=5.0, help="a partition's batch latency")
    parser.add_argument("--broken", choices=BROKEN_VARIANTS, help="drop one guard")
    args = parser.parse_args(argv)
    print(
        "N  acked events  events/s (simulated)  x N=1  registrations  takeovers  "
        "crashes  zombie batches refused  claims busy  violations"
    )
    base = 0.0
    failed = False
    for n in (int(v) for v in args.partitions.split(",")):
        params = Params(
            partitions=n,
            seed=args.seed,
            duration=args.duration,
            batch_latency=args.batch_ms / 1000,
            fencing=args.broken != "no-fencing",
            expiry_check=args.broken != "no-expiry-check",
        )
        stats, problems = simulate(params)
        rate = len(stats.acked) / params.duration
        base = base or rate
        print(
            f"{n:<2} {len(stats.acked):>12}  {rate:>20,.0f}  {rate / base:>5.2f}  "
            f"{stats.registered:>13}  {stats.takeovers:>9}  {stats.crashes:>7}  "
            f"{stats.zombie_refusals:>22}  {stats.claims_busy / params.duration:>10.0%}  "
            f"{len(problems):>10}"
        )
        for problem in problems[:5]:
            print(f"   violation: {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
