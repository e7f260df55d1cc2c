"""What encrypting personal data costs: append preparation and fold, before and after.

``python -m bench.pii_bench [--events N] [--rounds R]`` prints, per event,
what store_svc does to an event before the engine stores it (the domain
check, then: JSON encoding only, as before encryption; or sealing the
personal fields with the user's key, hashing the claims, then JSON), and the
time to fold one user's stream of N events read back from storage (parse,
open, ``domain.fold``): plain payloads against sealed ones. The same events
and the same code path as the service (``store_svc.servicer._new_event``,
``store_svc.convert.to_domain``); only the codec differs. Figures, not a
test: the best of ``R`` rounds, on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import domain
from pii.codec import PayloadCodec
from pii.keystore import KeyStore
from store_svc.convert import to_domain
from store_svc.engine import RecordedEvent

_JSON = json.JSONEncoder(separators=(",", ":"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stream(user_id: str, n: int) -> list[tuple[str, dict[str, str]]]:
    """A user's events: a registration, then logins with an email change every 10."""
    events: list[tuple[str, dict[str, str]]] = [
        (
            "user.created",
            {"email": "bench@example.com", "password_hash": "$2b$04$" + "x" * 53, "role": "user"},
        )
    ]
    for i in range(1, n):
        if i % 10 == 0:
            events.append(
                (
                    "user.email.changed",
                    {"old_email": f"b{i - 10}@example.com", "new_email": f"b{i}@example.com"},
                )
            )
        else:
            events.append(("user.login.recorded", {"client_address": f"10.0.{i % 250}.{i % 200}"}))
    return events


def best(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000, help="events per stream (default 1000)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as folder:
        codec = PayloadCodec(KeyStore(Path(folder) / "keys.sqlite3", bytes(range(32))))
        user_id = str(uuid.uuid4())
        events = stream(user_id, n)

        def prepare(sealed: bool) -> list[bytes]:
            out = []
            for i, (event_type, payload) in enumerate(events):
                domain.event_from_payload(
                    event_type, payload, aggregate_id=user_id, version=i + 1, occurred_at=T0
                )
                stored: dict[str, object] = dict(payload)
                if sealed:
                    codec.keys.claim_digest("user.email", "bench@example.com")
                    stored = codec.seal_event(event_type, payload, user_id)
                out.append(_JSON.encode(stored).encode())
            return out

        def records(payloads: list[bytes]) -> list[RecordedEvent]:
            return [
                RecordedEvent(
                    i + 1, str(i), user_id, "user", i + 1, t, T0 + timedelta(seconds=i), p, "", ""
                )
                for i, ((t, _), p) in enumerate(zip(events, payloads, strict=True))
            ]

        plain_records = records(prepare(False))
        sealed_records = records(prepare(True))

        def fold(recs: list[RecordedEvent], opened: bool) -> None:
            if opened:
                state = domain.fold(to_domain(r, codec) for r in recs)
            else:
                state = domain.fold(
                    domain.event_from_payload(
                        r.event_type,
                        json.loads(r.payload),
                        aggregate_id=r.aggregate_id,
                        version=r.version,
                        occurred_at=r.timestamp,
                    )
                    for r in recs
                )
            assert state is not None and state.version == n

        rounds = args.rounds
        append_plain = best(rounds, lambda: prepare(False)) / n * 1e6
        append_sealed = best(rounds, lambda: prepare(True)) / n * 1e6
        fold_plain = best(rounds, lambda: fold(plain_records, False)) * 1e3
        fold_sealed = best(rounds, lambda: fold(sealed_records, True)) * 1e3
        codec.keys.close()
    print(f"pii bench: {n} events per stream, best of {rounds} rounds")
    print(f"{'':34}{'plain':>10}{'encrypted':>12}")
    print(f"{'append: prepare one event (us)':34}{append_plain:>10.1f}{append_sealed:>12.1f}")
    print(f"{'fold one stream (ms)':34}{fold_plain:>10.1f}{fold_sealed:>12.1f}")


if __name__ == "__main__":
    main()
