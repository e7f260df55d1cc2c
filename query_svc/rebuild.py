"""``python -m query_svc.rebuild``: rebuild the read model, with a progress bar on stderr.

Calls ``QueryService.RebuildReadModel`` on a running query_svc as an admin:
with the token in ``ADMIN_TOKEN``, or by logging in with ``ADMIN_EMAIL`` and
``ADMIN_PASSWORD``. The target is ``QUERY_GRPC_TARGET`` (default
127.0.0.1:9095) or ``--target``.

Exit status: 0 once the new tables are swapped in; 1 if a call failed (the
status and message are printed); 2 if the configuration is incomplete.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Final, TextIO

import grpc
from cqrs.query.v1 import query_pb2 as pb
from cqrs.query.v1 import query_pb2_grpc as pb_grpc

DEFAULT_TARGET: Final = "127.0.0.1:9095"
LOGIN_TIMEOUT: Final = 10.0
_BAR_WIDTH: Final = 30


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def render(progress: pb.RebuildReadModelResponse) -> str:
    """One line of progress: bar, done/total, percent, rate, ETA."""
    total = max(progress.total, progress.done, 1)
    fraction = progress.done / total
    filled = int(fraction * _BAR_WIDTH)
    bar = "#" * filled + "." * (_BAR_WIDTH - filled)
    tail = "done" if progress.finished else f"ETA {_duration(progress.eta_seconds)}"
    return (
        f"[{bar}] {progress.done:,}/{progress.total:,} {fraction:6.1%} "
        f"{progress.rate:,.0f} events/s {tail}"
    )


class MissingCredentials(Exception):
    """Neither ADMIN_TOKEN nor ADMIN_EMAIL + ADMIN_PASSWORD is set."""


def admin_token(stub: pb_grpc.QueryServiceStub, env: Mapping[str, str]) -> str:
    """``ADMIN_TOKEN``, or a fresh token from logging in as ``ADMIN_EMAIL``."""
    token = env.get("ADMIN_TOKEN", "").strip()
    if token:
        return token
    email, password = env.get("ADMIN_EMAIL", ""), env.get("ADMIN_PASSWORD", "")
    if not email or not password:
        raise MissingCredentials("set ADMIN_TOKEN, or ADMIN_EMAIL and ADMIN_PASSWORD")
    response = stub.Login(pb.LoginRequest(email=email, password=password), timeout=LOGIN_TIMEOUT)
    return str(response.token)


def run(*, target: str, timeout: float, env: Mapping[str, str], out: TextIO) -> int:
    """Runs one rebuild and draws its progress on ``out``; the exit status."""
    interactive = out.isatty()
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        try:
            token = admin_token(stub, env)
            last_line = 0.0
            for progress in stub.RebuildReadModel(
                pb.RebuildReadModelRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=timeout,
            ):
                line = render(progress)
                if interactive:
                    out.write(f"\r{line}")
                elif progress.finished or time.monotonic() - last_line >= 1.0:
                    out.write(f"{line}\n")
                    last_line = time.monotonic()
                out.flush()
                if progress.finished:
                    if interactive:
                        out.write("\n")
                    out.write("read model rebuilt and swapped in\n")
                    return 0
        except MissingCredentials as exc:
            out.write(f"query_svc.rebuild: {exc}\n")
            return 2
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            out.write(f"\nquery_svc.rebuild: {code}: {details}\n")
            return 1
    out.write("\nquery_svc.rebuild: the stream ended before the rebuild finished\n")
    return 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m query_svc.rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("QUERY_GRPC_TARGET", DEFAULT_TARGET),
        help="query_svc address (default: $QUERY_GRPC_TARGET or %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="deadline of the rebuild in seconds"
    )
    args = parser.parse_args(argv)
    sys.exit(run(target=args.target, timeout=args.timeout, env=os.environ, out=sys.stderr))


if __name__ == "__main__":
    main()
