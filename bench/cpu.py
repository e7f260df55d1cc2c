"""CPU time of processes from /proc: the figure that survives a noisy machine.

A rate on a shared 2-core machine moves with whatever else runs; the CPU
seconds a process spent per operation do not (much). ``CpuMeter`` samples
``utime + stime`` of named process groups at the start and end of a window:
our services (each a process the harness started) and the infrastructure
servers (ClickHouse, PostgreSQL with its backends, Kafka), found by the
loopback port they listen on.

Caveat, reported with every figure: the infrastructure is shared, so its
CPU includes whatever other clients made it do during the window.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "CpuSample", "infra_pids"]

_TICKS = os.sysconf("SC_CLK_TCK")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _with_descendants(roots: Iterable[int]) -> list[int]:
    tree = _children()
    out, pending = [], list(roots)
    while pending:
        pid = pending.pop()
        out.append(pid)
        pending.extend(tree.get(pid, ()))
    return out


def _listening_inodes(ports: set[int]) -> dict[int, int]:
    """inode -> port of the TCP sockets listening on ``ports``."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            port = int(cols[1].rsplit(":", 1)[1], 16)
            if cols[3] == _LISTEN and port in ports:
                found[int(cols[9])] = port
    return found


def infra_pids(ports: Mapping[str, int]) -> dict[str, int]:
    """name -> pid of the process listening on each port (those this user can see)."""
    inodes = _listening_inodes(set(ports.values()))
    by_port: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                port = inodes.get(int(link[8:-1]))
                if port is not None:
                    by_port.setdefault(port, int(entry.name))
    return {name: by_port[port] for name, port in ports.items() if port in by_port}


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds per group at one instant (a group's descendants count too)."""

    seconds: dict[str, float]

    def minus(self, earlier: CpuSample) -> dict[str, float]:
        return {k: v - earlier.seconds.get(k, 0.0) for k, v in self.seconds.items()}


class CpuMeter:
    """Samples groups of processes: ``services`` by pid, ``infra`` by pid (with children),
    and ``others`` (reported alone, never in a group's sum: a reference server, the
    load generator)."""

    def __init__(
        self,
        services: Mapping[str, int],
        infra: Mapping[str, int],
        *,
        others: Mapping[str, int] | None = None,
    ) -> None:
        self._services = dict(services)
        self._infra = dict(infra)
        self._others = dict(others or {})

    def sample(self) -> CpuSample:
        out = {name: process_cpu(pid) for name, pid in {**self._services, **self._others}.items()}
        for name, pid in self._infra.items():
            # PostgreSQL forks a backend per connection: they are its children.
            out[name] = sum(process_cpu(p) for p in _with_descendants([pid]))
        return CpuSample(out)

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(self._services)

    @property
    def infra_names(self) -> tuple[str, ...]:
        return tuple(self._infra)

    @property
    def other_names(self) -> tuple[str, ...]:
        return tuple(self._others)
