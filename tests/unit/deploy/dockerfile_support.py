"""Reading the Dockerfile and .dockerignore the way ``docker build`` does, without Docker.

Invariants:
- :func:`parse` joins ``\\`` continuations and drops comment lines (also inside
  a continued instruction, as BuildKit does); each instruction keeps the line
  it starts on, for messages.
- :func:`stage_build_context` copies exactly what the build stage's ``COPY``
  instructions take from the context, minus what .dockerignore excludes, so a
  build of that folder shows whether the image gets everything it needs.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from tests.unit.deploy.compose_support import REPO

DOCKERFILE: Final = REPO / "Dockerfile"
DOCKERIGNORE: Final = REPO / ".dockerignore"


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for shell form."""
        if not self.args.startswith("["):
            return None
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return [str(v) for v in value]

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """``--flag=value`` options and the remaining words (COPY, FROM ...)."""
        flags: dict[str, str] = {}
        words: list[str] = []
        for word in self.args.split():
            if word.startswith("--") and not words:
                name, _, value = word[2:].partition("=")
                flags[name] = value
            else:
                words.append(word)
        return flags, words


def parse(path: Path = DOCKERFILE) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        text = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, f"{path.name}: ends inside a continued instruction"
    return instructions


def stages(instructions: Sequence[Instruction]) -> list[list[Instruction]]:
    """The instructions split into build stages (each starts with its FROM)."""
    out: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            out.append([])
        assert out, f"line {instruction.line}: {instruction.keyword} before any FROM"
        out[-1].append(instruction)
    return out


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex."""
    glob = glob.strip("/")
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif glob.startswith("**", i):
            out += ".*"
            i += 2
        elif glob[i] == "*":
            out += "[^/]*"
            i += 1
        elif glob[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(glob[i])
            i += 1
    return re.compile(out + "$")


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, pattern) for every line of .dockerignore, in order."""
    out: list[tuple[bool, re.Pattern[str]]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        out.append((exception, _pattern(line.lstrip("!"))))
    return out


def is_ignored(relative: str, patterns: Sequence[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether .dockerignore keeps ``relative`` (or a folder above it) out of the context."""
    parts = PurePosixPath(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for exception, pattern in patterns:  # the last matching line wins
        if any(pattern.match(c) for c in candidates):
            ignored = not exception
    return ignored


@dataclass(frozen=True, slots=True)
class ContextCopy:
    """A ``COPY`` from the build context (not ``--from`` another stage)."""

    sources: list[str]
    dest: str
    line: int


def context_copies(stage: Sequence[Instruction]) -> list[ContextCopy]:
    out: list[ContextCopy] = []
    for instruction in stage:
        if instruction.keyword != "COPY":
            continue
        flags, words = instruction.flags_and_words()
        if "from" in flags:
            continue
        assert len(words) >= 2, f"line {instruction.line}: COPY needs a source and a destination"
        out.append(ContextCopy(words[:-1], words[-1], instruction.line))
    return out


def stage_build_context(stage: Sequence[Instruction], into: Path) -> None:
    """Copies into ``into`` what ``stage``'s COPYs take (relative to its WORKDIR)."""
    patterns = ignore_patterns()
    for copy in context_copies(stage):
        for source in copy.sources:
            origin = REPO / source
            if origin.is_file():
                target = into / copy.dest / origin.name if copy.dest.endswith("/") else None
                target = target or into / copy.dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
                continue
            for path in sorted(origin.rglob("*")):
                relative = path.relative_to(REPO).as_posix()
                if path.is_dir() or is_ignored(relative, patterns):
                    continue
                target = into / copy.dest / path.relative_to(origin)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
