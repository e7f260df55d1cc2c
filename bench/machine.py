"""Facts about the machine a run measured, for the report (Linux /proc, free, nproc)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

__all__ = ["describe"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _free_h() -> str:
    if shutil.which("free") is None:
        return ""
    return subprocess.run(
        ["free", "-h"], capture_output=True, text=True, check=False
    ).stdout.strip()


def describe() -> dict[str, Any]:
    """nproc, CPU model, memory (``free -h``), load average now, date, Python and grpcio."""
    load1, load5, load15 = os.getloadavg()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "free_h": _free_h(),
        "load_average_at_start": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "kernel": platform.release(),
    }
