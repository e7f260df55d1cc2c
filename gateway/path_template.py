"""``google.api.http`` path templates: parsing, matching, precedence.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

``{id}`` is short for ``{id=*}``: one non-empty path segment. ``**`` matches
the rest of the path (zero or more segments) and may only come last.
Request paths are split on "/" *before* percent-decoding, so an id holding
an encoded slash (``%2F``) stays one segment.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Characters a literal segment or verb may hold: anything but the syntax.
_LITERAL = re.compile(r"[^/{}=*:]+")


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


class SegmentKind(enum.IntEnum):
    """Kinds of template segment, valued by precedence: literal beats ``*`` beats ``**``."""

    MULTI = 0
    SINGLE = 1
    LITERAL = 2


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    literal: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    """A captured field: segments ``start`` up to ``end`` (exclusive) of the template."""

    field_path: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template.

    Invariants: a MULTI segment, if any, is the last one; variables cover
    disjoint, non-empty segment ranges; no field is captured twice.
    """

    text: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str
    # Derived once, for ``match`` (it runs several times per request).
    _multi: bool = field(init=False, repr=False, compare=False)
    _fixed: int = field(init=False, repr=False, compare=False)
    _literals: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)
    _captures: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        multi = bool(self.segments) and self.segments[-1].kind is SegmentKind.MULTI
        fixed = len(self.segments) - 1 if multi else len(self.segments)
        head = self.segments[:fixed]
        literals = tuple(
            (i, s.literal) for i, s in enumerate(head) if s.kind is SegmentKind.LITERAL
        )
        captures = tuple(i for i, s in enumerate(head) if s.kind is not SegmentKind.LITERAL)
        object.__setattr__(self, "_multi", multi)
        object.__setattr__(self, "_fixed", fixed)
        object.__setattr__(self, "_literals", literals)
        object.__setattr__(self, "_captures", captures)

    @property
    def specificity(self) -> tuple[int, ...]:
        """Precedence key: compared left to right, a literal beats a variable.

        Among templates matching the same path, the greatest key wins, so
        ``/events/count`` wins over ``/events/{id}``, which wins over
        ``/events/**``. A custom verb adds a final point.
        """
        return (*(s.kind for s in self.segments), 1 if self.verb else 0)

    @property
    def shape(self) -> tuple[object, ...]:
        """Two templates with equal shapes match exactly the same paths."""
        return (tuple((s.kind, s.literal) for s in self.segments), self.verb)

    @property
    def field_paths(self) -> tuple[str, ...]:
        return tuple(v.field_path for v in self.variables)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        """The captured fields if the decoded request segments match, else None."""
        parts = segments
        if self.verb:
            if not parts or not parts[-1].endswith(":" + self.verb):
                return None
            parts = [*parts[:-1], parts[-1][: -len(self.verb) - 1]]
        multi, fixed = self._multi, self._fixed
        if len(parts) < fixed or (not multi and len(parts) != fixed):
            return None
        for index, literal in self._literals:
            if parts[index] != literal:
                return None
        for index in self._captures:
            if parts[index] == "":
                return None  # a variable never captures an empty segment
        captured: dict[str, str] = {}
        for variable in self.variables:
            end = len(parts) if variable.end == len(self.segments) and multi else variable.end
            captured[variable.field_path] = "/".join(parts[variable.start : end])
        return captured

    def openapi_path(self) -> str:
        """The template in OpenAPI's syntax: each variable becomes ``{field.path}``."""
        out: list[str] = []
        index = 0
        starts = {v.start: v for v in self.variables}
        while index < len(self.segments):
            variable = starts.get(index)
            if variable is not None:
                out.append("{" + variable.field_path + "}")
                index = variable.end
                continue
            segment = self.segments[index]
            out.append(segment.literal if segment.kind is SegmentKind.LITERAL else "*")
            index += 1
        path = "/" + "/".join(out)
        return f"{path}:{self.verb}" if self.verb else path


def parse(text: str) -> PathTemplate:
    """Parses a template; raises TemplateError saying what is wrong and where."""
    return _Parser(text).template()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.segments: list[Segment] = []
        self.variables: list[Variable] = []

    def fail(self, problem: str) -> TemplateError:
        return TemplateError(f"path template {self.text!r}: {problem} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def template(self) -> PathTemplate:
        if not self.text.startswith("/"):
            raise self.fail("must start with '/'")
        self.pos = 1
        if self.text != "/":
            self.segment_list(inside_variable=False)
        verb = ""
        if self.peek() == ":":
            self.pos += 1
            verb = self.literal()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        for index, segment in enumerate(self.segments):
            if segment.kind is SegmentKind.MULTI and index != len(self.segments) - 1:
                raise self.fail("'**' must be the last segment")
        fields = [v.field_path for v in self.variables]
        if len(set(fields)) != len(fields):
            raise self.fail("a field is captured twice")
        return PathTemplate(self.text, tuple(self.segments), tuple(self.variables), verb)

    def segment_list(self, *, inside_variable: bool) -> None:
        self.segment(inside_variable=inside_variable)
        while self.peek() == "/":
            self.pos += 1
            self.segment(inside_variable=inside_variable)

    def segment(self, *, inside_variable: bool) -> None:
        if self.text.startswith("**", self.pos):
            self.pos += 2
            self.segments.append(Segment(SegmentKind.MULTI))
        elif self.peek() == "*":
            self.pos += 1
            self.segments.append(Segment(SegmentKind.SINGLE))
        elif self.peek() == "{":
            if inside_variable:
                raise self.fail("variables cannot nest")
            self.variable()
        else:
            self.segments.append(Segment(SegmentKind.LITERAL, self.literal()))

    def variable(self) -> None:
        self.pos += 1  # "{"
        match = _FIELD_PATH.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a field path")
        self.pos = match.end()
        start = len(self.segments)
        if self.peek() == "=":
            self.pos += 1
            self.segment_list(inside_variable=True)
        else:
            self.segments.append(Segment(SegmentKind.SINGLE))
        if self.peek() != "}":
            raise self.fail("expected '}'")
        self.pos += 1
        self.variables.append(Variable(match.group(), start, len(self.segments)))

    def literal(self) -> str:
        match = _LITERAL.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a literal")
        self.pos = match.end()
        return match.group()


def split_path(raw_path: str) -> list[str]:
    """Splits a raw (still percent-encoded) request path into decoded segments.

    ``/`` is no segment; one trailing slash is ignored (``/users/`` is
    ``/users``). Raises ValueError if a segment is not UTF-8 once decoded.
    """
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    body = raw_path[1:]
    if body.endswith("/"):
        body = body[:-1]
    if body == "":
        return []
    return [unquote(part, errors="strict") for part in body.split("/")]
