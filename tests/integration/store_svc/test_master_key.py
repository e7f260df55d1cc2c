"""Every entry point that opens the key store refuses to start with a master key
that does not open it: store_svc, ``make up`` (``python -m bootstrap``), and
query_svc projecting the Kafka topic (whose events carry sealed fields)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pii.keystore import KeyStore
from pii.settings import decode_master_key, new_master_key
from tests import auth_support

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("module", "extra", "prefix"),
    [
        ("store_svc", {}, "store_svc: "),
        ("bootstrap", {}, "make up: "),
        (
            "query_svc",
            {
                "QUERY_EVENT_SOURCE": "kafka",
                "KAFKA_BROKER": "127.0.0.1:9",
                "QUERY_GRPC_LISTEN": "127.0.0.1:0",
                **auth_support.TEST_ENV,
            },
            "query_svc: ",
        ),
    ],
)
def test_every_entry_point_refuses_a_wrong_master_key(
    tmp_path: Path, module: str, extra: dict[str, str], prefix: str
) -> None:
    KeyStore(tmp_path / "pii-keys.sqlite3", decode_master_key(new_master_key(), "key")).close()
    env = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(tmp_path),
        "PII_MASTER_KEY": new_master_key(),
        "STORE_GRPC_LISTEN": "127.0.0.1:0",
        "COMMAND_GRPC_LISTEN": "127.0.0.1:0",
        "GATEWAY_PORTS": "0,0,0",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(prefix + "PII_MASTER_KEY does not open the key store"), (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "events.sqlite3").exists()  # refused before touching the events
