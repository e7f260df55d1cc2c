"""Optional py-spy sampling of the service processes while a scenario runs.

``--profile DIR`` attaches ``py-spy record`` (raw collapsed stacks, one file
per scenario and service) for the life of each scenario's stack;
``python -m bench.profile_summary FILE...`` prints where the time went.
Profiling costs CPU on a 2-core machine, so figures from a profiled run are
for diagnosis, not for the table (the report marks such a run).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Profiler", "Recording", "find_py_spy"]

log = logging.getLogger("bench")
_FALLBACK = Path("/tmp/tv/bin/py-spy")
_STOP_WAIT = 30.0


def find_py_spy(explicit: str | None) -> str:
    """The py-spy binary: ``explicit``, else on PATH, else this venv's (a dev
    dependency), else the throwaway venv's."""
    beside = Path(sys.executable).parent / "py-spy"
    for candidate in (explicit, shutil.which("py-spy"), str(beside), str(_FALLBACK)):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError("py-spy not found: pip install py-spy (into any venv), pass --py-spy")


class Recording:
    """The py-spy recorders started by one ``Profiler.attach``."""

    def __init__(self, children: list[subprocess.Popen[bytes]]) -> None:
        self._children = children

    async def stop(self) -> None:
        """Stops every recorder (SIGINT makes py-spy write its file) and reaps it."""
        children, self._children = self._children, []
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                await asyncio.wait_for(asyncio.to_thread(child.wait), _STOP_WAIT)
            except TimeoutError:
                log.warning("py-spy %d did not stop; killing it", child.pid)
                child.kill()
                await asyncio.to_thread(child.wait)


class Profiler:
    """Starts py-spy recorders writing raw collapsed stacks into ``out_dir``."""

    def __init__(self, *, py_spy: str, out_dir: Path, rate: int = 100) -> None:
        self._py_spy = py_spy
        self._out_dir = out_dir
        self._rate = rate
        out_dir.mkdir(parents=True, exist_ok=True)

    def attach(self, pids: Mapping[str, int], *, label: str) -> Recording:
        """Records each process until the returned recording is stopped."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label) or "scenario"
        children = []
        for name, pid in pids.items():
            out = self._out_dir / f"{safe}-{name}.txt"
            command = [self._py_spy, "record", "--pid", str(pid), "--rate", str(self._rate)]
            command += ["--format", "raw", "--threads", "--nonblocking", "--output", str(out)]
            children.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        return Recording(children)
