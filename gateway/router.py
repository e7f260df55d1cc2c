"""Matching a request (verb, path) to one route, with precedence.

Rules, in order:

1. Only templates that match the whole path are candidates; none → 404.
2. Among candidates for the request's verb, the most specific template wins
   (``PathTemplate.specificity``: left to right, literal beats variable);
   so ``/events/count`` is never taken as ``/events/aggregate/{id}`` or a
   variable, and ``/replay/users/state-at`` never as ``/replay/user/{id}/...``.
3. Candidates exist but none for this verb → 405 with an ``Allow`` header.

Two routes with the same verb and the same template shape are a conflict,
refused when the table is built (at start), never resolved by order.

Entries are bucketed by their leading literal segments (up to two) and their
number of segments, so a request is matched only against templates that can
match it (every route is served twice, under ``/v1`` and unprefixed: a scan
of all would double; ``/users/...`` alone has a dozen routes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import bad_request, method_not_allowed, not_found
from gateway.path_template import PathTemplate, SegmentKind, split_path

T = TypeVar("T")


class RouteConflict(ValueError):
    """Two routes would answer the same requests."""


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    verb: str
    template: PathTemplate
    target: T


@dataclass(frozen=True, slots=True)
class Resolved(Generic[T]):
    target: T
    template: PathTemplate
    params: dict[str, str]


class RouteTable(Generic[T]):
    """Routes keyed by verb and template; ``resolve`` applies the rules above."""

    def __init__(self, entries: Iterable[Entry[T]] = ()) -> None:
        self._entries: list[Entry[T]] = []
        self._shapes: dict[tuple[str, tuple[object, ...]], Entry[T]] = {}
        # (leading literal segments (one or two), number of segments) -> entries
        # starting with exactly those literals and that long; () holds the rest
        # (a variable or ** first, or "/"). A template ending in ** matches
        # paths of any length from its own: it is kept under -1.
        self._buckets: dict[tuple[tuple[str, ...], int], list[Entry[T]]] = {}
        for entry in entries:
            self.add(entry)

    @property
    def entries(self) -> tuple[Entry[T], ...]:
        return tuple(self._entries)

    def add(self, entry: Entry[T]) -> None:
        key = (entry.verb, entry.template.shape)
        existing = self._shapes.get(key)
        if existing is not None:
            raise RouteConflict(
                f"{entry.verb} {entry.template.text} conflicts with "
                f"{existing.verb} {existing.template.text}"
            )
        self._shapes[key] = entry
        self._entries.append(entry)
        self._buckets.setdefault(_bucket_key(entry.template), []).append(entry)

    def resolve(self, verb: str, raw_path: str) -> Resolved[T]:
        """The route for a request; raises GatewayError 400/404/405."""
        try:
            segments = split_path(raw_path)
        except UnicodeDecodeError:
            raise bad_request("path", "not UTF-8 once percent-decoded") from None
        best: Resolved[T] | None = None
        allowed: set[str] = set()
        # A literal holds no ":", so a custom verb on a leading segment
        # ("/probes:watch") never hides the bucket.
        lead = tuple(part.partition(":")[0] for part in segments[:2])
        size = len(segments)
        buckets = (
            self._buckets.get((key, length), ())
            for key in {lead, lead[:1], ()}
            for length in (size, -1)
        )
        for entry in (entry for bucket in buckets for entry in bucket):
            params = entry.template.match(segments)
            if params is None:
                continue
            allowed.add(entry.verb)
            if entry.verb != verb:
                continue
            if best is None or entry.template.specificity > best.template.specificity:
                best = Resolved(entry.target, entry.template, params)
        if best is not None:
            return best
        if allowed:
            raise method_not_allowed(verb, raw_path[:200], allowed)
        raise not_found(f"no route for {raw_path[:200]}")


def _bucket_key(template: PathTemplate) -> tuple[tuple[str, ...], int]:
    """The literal segments a template starts with (at most two), and its number of
    segments (-1 if it ends in ``**``)."""
    out: list[str] = []
    for segment in template.segments[:2]:
        if segment.kind is not SegmentKind.LITERAL:
            break
        out.append(segment.literal)
    segments = template.segments
    multi = bool(segments) and segments[-1].kind is SegmentKind.MULTI
    return tuple(out), -1 if multi else len(segments)
