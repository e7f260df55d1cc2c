"""The rebuild CLI: its progress line and its exit status without credentials."""

from __future__ import annotations

import io

import pytest
from cqrs.query.v1 import query_pb2 as pb

from query_svc.rebuild import render, run

pytestmark = pytest.mark.unit


def test_progress_line_shows_counts_percent_rate_and_eta() -> None:
    line = render(pb.RebuildReadModelResponse(done=2500, total=10000, rate=1234.4, eta_seconds=6.1))
    assert line.startswith("[" + "#" * 7 + "." * 23 + "]")
    assert "2,500/10,000" in line and "25.0%" in line
    assert "1,234 events/s" in line and "ETA 0:00:06" in line


def test_finished_line_says_done() -> None:
    line = render(pb.RebuildReadModelResponse(done=3, total=3, rate=9.0, finished=True))
    assert "#" * 30 in line and line.endswith("done")


def test_an_empty_store_does_not_divide_by_zero() -> None:
    assert "0/0" in render(pb.RebuildReadModelResponse(finished=True))


def test_no_credentials_is_exit_status_2() -> None:
    out = io.StringIO()
    assert run(target="127.0.0.1:9", timeout=1, env={}, out=out) == 2
    assert "ADMIN_TOKEN" in out.getvalue()
