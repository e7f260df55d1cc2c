"""Result rows, their verdicts, the printed table and the JSON file.

A row's verdict is computed from its figure and its target only:
PASS/MISS where the issue sets a target, ``info`` where it does not, and
ERROR when the scenario could not run (the message says why).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Row", "Target", "render_table", "rows_from_json", "write_json"]

Verdict = Literal["PASS", "MISS", "info", "ERROR"]


@dataclass(frozen=True, slots=True)
class Target:
    """``value`` compared with ``op`` against the row's ratio (or its figure if ``on_figure``)."""

    op: Literal[">=", "<="]
    value: float
    on_figure: bool = False
    text: str = ""

    def met_by(self, figure: float, ratio: float | None) -> bool:
        subject = figure if self.on_figure else ratio
        if subject is None or math.isnan(subject):
            return False
        return subject >= self.value if self.op == ">=" else subject <= self.value


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of one scenario on one stack."""

    scenario: int
    stack: str
    what: str
    figure: float
    unit: str
    ratio: float | None = None
    ratio_to: str = ""
    target: Target | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    recorded: str = ""  # a verdict read back from JSON (see rows_from_json)

    @property
    def verdict(self) -> Verdict:
        if self.recorded in ("PASS", "MISS", "info", "ERROR"):
            return self.recorded  # type: ignore[return-value]
        if self.error:
            return "ERROR"
        if self.target is None:
            return "info"
        return "PASS" if self.target.met_by(self.figure, self.ratio) else "MISS"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = self.target.text if self.target else ""
        out["verdict"] = self.verdict
        return out

    @classmethod
    def failed(cls, scenario: int, stack: str, what: str, error: str) -> Row:
        return cls(scenario, stack, what, math.nan, "", error=error)


def _figure(row: Row) -> str:
    if row.error:
        return "-"
    if row.unit == "ms":
        return f"{row.figure:,.2f} ms"
    if abs(row.figure) < 100:
        return f"{row.figure:,.1f} {row.unit}"
    return f"{row.figure:,.0f} {row.unit}"


def _ratio(row: Row) -> str:
    if row.ratio is None or math.isnan(row.ratio):
        return ""
    return f"{row.ratio:.2f} x {row.ratio_to}"


def _first_line(text: str) -> str:
    return " ".join(text.split())


def render_table(rows: Sequence[Row]) -> str:
    """A fixed-width text table (also valid Markdown)."""
    header = ("stack", "#", "scenario", "figure", "ratio", "target", "result")
    lines = [
        (
            r.stack,
            str(r.scenario),
            r.what,
            _figure(r),
            _ratio(r),
            r.target.text if r.target else "",
            r.verdict if not r.error else f"ERROR: {_first_line(r.error)[:70]}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


def write_json(path: Path, *, meta: Mapping[str, Any], rows: Sequence[Row]) -> None:
    """Writes the run's metadata and rows as strict JSON (NaN becomes null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = _strict({**meta, "rows": [r.as_json() for r in rows]})
    path.write_text(json.dumps(document, indent=2, default=str, allow_nan=False) + "\n")


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def rows_from_json(document: Mapping[str, Any]) -> list[Row]:
    """The rows of a written JSON file, for re-rendering its table (verdicts as recorded)."""
    rows: list[Row] = []
    for raw in document["rows"]:
        target = None
        if raw["target"]:
            # Only the text is rendered; the verdict is the recorded one.
            target = Target(">=", math.nan, text=str(raw["target"]))
        figure = raw["figure"] if raw["figure"] is not None else math.nan
        rows.append(
            Row(
                raw["scenario"],
                raw["stack"],
                raw["what"],
                figure,
                raw["unit"],
                ratio=raw["ratio"],
                ratio_to=raw["ratio_to"],
                target=target,
                details=raw["details"],
                error=raw["error"],
                recorded=raw["verdict"],
            )
        )
    return rows
