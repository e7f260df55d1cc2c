"""store_svc refuses to start with a master key that does not open its key store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pii.keystore import KeyStore
from pii.settings import decode_master_key, new_master_key

pytestmark = pytest.mark.integration


def test_a_wrong_master_key_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    KeyStore(tmp_path / "pii-keys.sqlite3", decode_master_key(new_master_key(), "key")).close()
    env = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(tmp_path),
        "PII_MASTER_KEY": new_master_key(),
        "STORE_GRPC_LISTEN": "127.0.0.1:0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "store_svc"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "PII_MASTER_KEY does not open the key store" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "events.sqlite3").exists()  # refused before touching the events
