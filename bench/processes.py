"""Service processes for the benchmarks: spawned as deployed, stopped by the harness.

Invariants:
- every process listens on a free loopback port and is started with an
  explicit environment (nothing leaks in from a developer's shell except
  what the caller passes on);
- a process that dies before it serves makes ``start`` fail with the tail
  of its log, never a hang: readiness waits are bounded;
- ``stop`` sends SIGTERM (graceful stop), then SIGKILL after a grace period,
  and always reaps the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import grpc

__all__ = ["ServiceProcess", "child_env", "free_port", "wait_listening", "wait_serving"]

_READY_WITHIN = 60.0
_STOP_GRACE = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_serving(target: str, *, within: float = _READY_WITHIN) -> None:
    """Waits until a gRPC server accepts a connection at ``target``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                await asyncio.wait_for(channel.channel_ready(), 1.0)
                return
        except (TimeoutError, grpc.aio.AioRpcError):
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{target} did not come up within {within:.0f} s")


async def wait_listening(target: str, *, within: float = _READY_WITHIN) -> None:
    """Waits until something accepts TCP connections at ``target`` (an HTTP server:
    uvicorn listens only once its app has started)."""
    host, _, port = target.rpartition(":")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"{target} did not come up within {within:.0f} s")


class ServiceProcess:
    """One ``python -m <module> [args]`` child with its log in ``log_dir``."""

    def __init__(
        self,
        module: str,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        args: tuple[str, ...] = (),
    ) -> None:
        self.module = module
        self.log_path = log_dir / f"{module.replace('.', '_')}.log"
        self._env = dict(env)
        self._args = args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.module} is not running")
        return self._proc.pid

    async def start(
        self, target: str, *, ready: Callable[[str], Coroutine[Any, Any, None]] = wait_serving
    ) -> None:
        """Spawns the process and waits until it serves at ``target`` (gRPC unless ``ready``)."""
        with self.log_path.open("ab") as log:
            # A load generator, not a server: a blocking spawn before measuring is fine.
            self._proc = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", self.module, *self._args],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        waiter = asyncio.create_task(ready(target))
        try:
            while not waiter.done():
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.module} exited with {self._proc.returncode} before serving:\n"
                        f"{self.log_tail()}"
                    )
                await asyncio.wait({waiter}, timeout=0.1)
            waiter.result()
        except BaseException:
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter
            await self.stop()
            raise

    def exited_with(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if still running after the grace period; reaps the child."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), _STOP_GRACE)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The harness's own environment plus ``extra`` (PATH, HOME, locale stay usable)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env
