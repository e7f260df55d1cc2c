"""``cqrs-admin``'s refusals: one line naming the cause, a non-zero exit, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqrs_admin.cli import main

pytestmark = pytest.mark.unit


def _exit(argv: list[str]) -> object:
    """The exit code (or message) of ``cqrs-admin ARGV``."""
    with pytest.raises(SystemExit) as ended:
        main(argv)
    return ended.value.code


def test_a_bad_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_STORE_BACKEND", "oracle")
    code = _exit(["status"])
    assert code == "cqrs-admin: EVENT_STORE_BACKEND='oracle': must be one of sqlite, clickhouse"


def test_restore_refuses_a_file_that_is_not_a_backup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not an archive")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EVENT_STORE_BACKEND", "sqlite")
    monkeypatch.setenv("QUERY_DB_BACKEND", "sqlite")
    code = _exit(["restore", "--from", str(junk)])
    assert isinstance(code, str)
    assert code.startswith(f"cqrs-admin restore: {junk}: not a readable backup")
    assert not (tmp_path / "data" / "events.sqlite3").exists()


def test_restore_refuses_a_non_empty_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("EVENT_STORE_BACKEND", "sqlite")
    monkeypatch.setenv("QUERY_DB_BACKEND", "sqlite")
    monkeypatch.delenv("KAFKA_BROKER", raising=False)
    data.mkdir()
    (data / "events.sqlite3").write_bytes(b"")
    archive = tmp_path / "b.tar.gz"
    # A real (empty) embedded backup of another folder.
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "other"))
    _exit(["migrate"])
    assert _exit(["backup", "--out", str(archive)]) == 0
    monkeypatch.setenv("DATA_DIR", str(data))
    code = _exit(["restore", "--from", str(archive)])
    assert code == (
        f"cqrs-admin restore: DATA_DIR {data} is not empty: restore into a new, empty folder "
        "(set DATA_DIR to it), then start the system there"
    )


def test_rebuild_without_admin_credentials_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ADMIN_TOKEN", "ADMIN_EMAIL", "ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    code = _exit(["rebuild", "--target", "127.0.0.1:1"])
    assert code == 2
    assert "set ADMIN_TOKEN, or ADMIN_EMAIL and ADMIN_PASSWORD" in capsys.readouterr().err


def test_copy_store_refuses_a_missing_source_and_an_existing_target(tmp_path: Path) -> None:
    code = _exit(["copy-store", "--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "n")])
    missing = tmp_path / "nowhere" / "events.sqlite3"
    assert code == f"cqrs-admin copy-store: {missing} does not exist: no event store to copy"
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "events.sqlite3").write_bytes(b"")
    code = _exit(["copy-store", "--from", str(tmp_path), "--to", str(taken)])
    assert code == (
        f"cqrs-admin copy-store: {taken / 'events.sqlite3'} exists: copy into a new, empty "
        "data folder"
    )


def test_copy_store_takes_one_pair_of_places(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = str(tmp_path / "keys.sqlite3")
    for argv in (
        ["--from", str(tmp_path)],
        ["--to-database", "copy"],
        ["--from", str(tmp_path), "--to", str(tmp_path), "--to-database", "copy"],
        ["--to-database", "copy", "--to-keys", keys, "--from", str(tmp_path)],
    ):
        assert _exit(["copy-store", *argv]) == 2
        assert "--from DIR --to TARGET, or --to-database NAME --to-keys FILE" in (
            capsys.readouterr().err
        )
    monkeypatch.setenv("EVENT_STORE_BACKEND", "sqlite")
    code = _exit(["copy-store", "--to-database", "copy", "--to-keys", keys])
    assert isinstance(code, str) and "set EVENT_STORE_BACKEND=clickhouse" in code
    monkeypatch.setenv("EVENT_STORE_BACKEND", "clickhouse")
    monkeypatch.setenv("CLICKHOUSE_HOST", "127.0.0.1:1")
    code = _exit(["copy-store", "--to-database", "not-a-name", "--to-keys", keys])
    assert code == (
        "cqrs-admin copy-store: the copy's ClickHouse: "
        "ClickHouse database name 'not-a-name' is not an identifier"
    )
