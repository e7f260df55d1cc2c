"""One-process mode: callers follow the ports the services really bound."""

from __future__ import annotations

import pytest

from bootstrap.run_all import following

pytestmark = pytest.mark.unit


def test_unset_targets_follow_the_bound_ports() -> None:
    env = {"STORE_GRPC_LISTEN": "0.0.0.0:7000", "COMMAND_GRPC_TARGET": ""}
    out = following(env, {"store": 7000, "command": 7001})
    assert out["STORE_GRPC_TARGET"] == "127.0.0.1:7000"
    assert out["COMMAND_GRPC_TARGET"] == "127.0.0.1:7001"  # empty counts as unset
    assert "QUERY_GRPC_TARGET" not in out  # not started yet


def test_a_target_the_user_set_is_kept() -> None:
    env = {"STORE_GRPC_TARGET": "store.example:9090"}
    assert following(env, {"store": 7000})["STORE_GRPC_TARGET"] == "store.example:9090"
