"""``python -m bench.profile_summary FILE...``: where a py-spy raw profile spent its time.

Reads py-spy's ``--format raw`` output (collapsed stacks: ``frame;frame;... count``)
and prints, per file, the samples taken (busy time only: py-spy skips idle
threads by default), then the functions with the most *inclusive* samples
(time spent in them or below) and the most *self* samples (time in their
own code), each as a share of all samples.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["summarize"]

_LINE_NO = re.compile(r":\d+\)$")


def _frames(stack: str) -> list[str]:
    # "function (path/file.py:123)" -> "function (path/file.py)": group lines of a function.
    return [_LINE_NO.sub(")", frame) for frame in stack.split(";") if frame]


def summarize(lines: Iterable[str], *, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        total += count
        if frames and frames[0].startswith("thread "):
            threads[frames[0].split(": ", 1)[-1]] += count
        for frame in set(frames[1:] if frames and frames[0].startswith("thread ") else frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    out.append("threads: " + ", ".join(f"{t} {n / total:.0%}" for t, n in threads.most_common()))
    out.append("inclusive:")
    out.extend(f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top))
    out.append("self:")
    out.extend(f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.files:
        print(f"== {path}")
        with path.open() as lines:
            print(summarize(lines, top=args.top))
        print()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
