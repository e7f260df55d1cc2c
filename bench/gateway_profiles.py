"""``python -m bench.gateway_profiles``: what the two HTTP profiles cost the gateway, per request.

Prints, in microseconds (median of repeated runs, this process, no I/O):

- route resolution on the real route table (every route served under
  ``/v1`` and unprefixed) for a few paths;
- rendering a reply to JSON bytes in our shape (``/v1``) and in the seed's
  (the seed's re-shaping on the dict, then the same encode), for a
  1,000-event ``ListEvents`` page, a 100-step history and a state.

Figures, not a test: they show the seed's shape adds a small fraction to a
render that the encode dominates, and that matching did not slow down.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from gateway.profiles import served_routes
from gateway.router import Entry, RouteTable
from gateway.routes import HttpRoute, load_routes
from gateway.seed_format import SEED_ROUTES
from gateway.transcode import build_request, dumps, render
from service_kit import descriptors

USER = "6f1c2a9e-0000-4000-8000-000000000001"


def _micros(call: Callable[[], object], *, number: int, repeat: int) -> float:
    runs = timeit.repeat(call, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e6


def _state(message: Any, version: int) -> None:
    message.user_id = USER
    message.email = "someone@example.com"
    message.role = "user"
    message.status = 1
    message.version = version
    message.created_at.FromJsonString("2026-01-01T00:00:00Z")
    message.updated_at.FromJsonString("2026-01-01T00:00:01.123456Z")
    message.password_version = 1


def _event(message: Any, position: int) -> None:
    message.position = position
    message.event_id = f"00000000-0000-4000-8000-{position:012d}"
    message.aggregate_id = USER
    message.aggregate_type = "user"
    message.version = position
    message.event_type = "user.email.changed"
    message.timestamp.FromJsonString("2026-01-01T00:00:01.123456Z")
    message.payload.update({"old_email": "a@example.com", "new_email": "b@example.com"})
    message.correlation_id = "c" * 36


def _replies(routes: dict[str, HttpRoute]) -> dict[str, Any]:
    events = routes["ListEvents"].rpc.response_class()
    for position in range(1, 1001):
        _event(events.events.add(), position)  # type: ignore[attr-defined]
    events.count = 1000  # type: ignore[attr-defined]
    history = routes["GetHistory"].rpc.response_class()
    history.aggregate_id = USER  # type: ignore[attr-defined]
    for version in range(1, 101):
        entry = history.entries.add()  # type: ignore[attr-defined]
        _event(entry.event, version)
        _state(entry.state, version)
        entry.changed_fields.append("email")
    state = routes["GetState"].rpc.response_class()
    _state(state.state, 3)  # type: ignore[attr-defined]
    state.events_replayed = 3  # type: ignore[attr-defined]
    return {"ListEvents": events, "GetHistory": history, "GetState": state}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    routes = load_routes(descriptors.descriptor_set(), descriptors.pool())
    by_name = {r.rpc.name: r for r in routes}
    served = served_routes(routes)
    table: RouteTable[object] = RouteTable(Entry(s.verb, s.template, s) for s in served)

    print(f"route resolution ({len(table.entries)} routes), us per request")
    for path in (
        f"/v1/replay/user/{USER}/state-at",
        f"/replay/user/{USER}/state-at",
        f"/v1/events/aggregate/{USER}",
        "/events/count",
        "/users",
    ):
        cost = _micros(partial(table.resolve, "GET", path), number=5000, repeat=args.repeat)
        print(f"  {path:<60} {cost:8.1f}")

    print("render to JSON bytes, us per reply: /v1 shape, seed shape, seed extra")
    for name, reply in _replies(by_name).items():
        v1, seed_cost = _render_costs(by_name[name], reply, args.repeat)
        extra = (seed_cost - v1) / v1 * 100
        print(f"  {name:<12} {v1:10.1f} {seed_cost:10.1f} {extra:+8.1f}%")


def _render_costs(route: HttpRoute, reply: Any, repeat: int) -> tuple[float, float]:
    """(our shape, the seed's shape): microseconds to turn ``reply`` into JSON bytes."""
    reshape = SEED_ROUTES[(route.verb, route.template.text)].render
    assert reshape is not None
    params = {p: USER for p in route.path_fields}
    request = build_request(route, path_params=params, query=[], body=b"")
    number = 20 if reply.ByteSize() > 100_000 else 200
    ours = _micros(lambda: dumps(render(route, reply)), number=number, repeat=repeat)
    theirs = _micros(
        lambda: dumps(reshape(request, render(route, reply), {})), number=number, repeat=repeat
    )
    return ours, theirs


if __name__ == "__main__":
    main()
