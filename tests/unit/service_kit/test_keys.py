"""service_kit.keys: key files, rotation, pruning, reloading, the JWKS and the CLI."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import jwt
import pytest

from service_kit import keys
from service_kit.auth import ROLE_USER, Principal, TokenSettings
from service_kit.settings import SettingsError
from service_kit.timeconv import utcnow

pytestmark = pytest.mark.unit


def test_init_creates_each_signer_the_trust_file_and_the_mail_key(tmp_path: Path) -> None:
    created = keys.init_keys(tmp_path)
    assert set(created) >= {"query_svc.signing.json", "trusted.json:query_svc", "mail.key"}
    for signer in keys.DEFAULT_SIGNERS:
        path = keys.signing_file(tmp_path, signer)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = keys.load_signing_key(tmp_path, signer)
        assert keys.load_trusted(tmp_path)[key.kid].signer == signer
    assert stat.S_IMODE((tmp_path / "mail.key").stat().st_mode) == 0o600
    assert len(keys.load_mail_key(tmp_path)) == 32
    # The trust file holds no private key.
    assert '"d"' not in (tmp_path / "trusted.json").read_text()
    assert keys.init_keys(tmp_path) == []  # idempotent


def test_a_kid_is_the_rfc7638_thumbprint(tmp_path: Path) -> None:
    key = keys.generate_signing_key("query_svc")
    jwk = jwt.PyJWK(key.public_jwk())
    assert key.kid == keys.thumbprint(key.public_jwk()["x"]) == jwk.key_id


def test_rotation_keeps_the_old_key_trusted_for_a_token_lifetime(tmp_path: Path) -> None:
    keys.init_keys(tmp_path)
    settings = TokenSettings(keys_dir=tmp_path, ttl_seconds=60)
    old_token, _ = settings.signer("query_svc").issue(Principal("u", "", ROLE_USER), now=utcnow())
    old = keys.load_signing_key(tmp_path, "query_svc")
    new = keys.rotate_key(tmp_path, "query_svc", now=time.time())
    assert new.kid != old.kid
    assert keys.load_signing_key(tmp_path, "query_svc").kid == new.kid
    trusted = keys.load_trusted(tmp_path)
    assert trusted[old.kid].retired_at is not None and trusted[new.kid].retired_at is None
    # A fresh verifier (a restarted service) still accepts the old token.
    assert settings.verifier().decode(old_token).subject == "u"
    listed = keys.jwks(trusted, "query_svc", now=time.time(), max_token_ttl=60)
    assert [k["kid"] for k in listed] == [new.kid, old.kid]
    assert all(set(k) == {"kty", "crv", "x", "kid", "alg", "use"} for k in listed)
    # After a token lifetime the old key is dropped, by prune and by the JWKS.
    later = time.time() + 61
    assert keys.jwks(trusted, "query_svc", now=later, max_token_ttl=60) == [new.public_jwk()]
    assert keys.prune_keys(tmp_path, max_token_ttl=60, now=later) == [old.kid]
    assert old.kid not in keys.load_trusted(tmp_path)


def test_a_tampered_or_missing_file_is_a_settings_error_naming_keys_dir(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^KEYS_DIR"):
        keys.load_trusted(tmp_path)
    keys.init_keys(tmp_path)
    path = keys.signing_file(tmp_path, "gateway")
    data = json.loads(path.read_text())
    other = keys.generate_signing_key("gateway").private_jwk()
    data["key"]["d"] = other["d"]  # private half of another key
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match="does not match"):
        keys.load_signing_key(tmp_path, "gateway")
    with pytest.raises(SettingsError, match="not a signing key file of command_svc"):
        (tmp_path / "command_svc.signing.json").write_text(path.read_text())
        keys.load_signing_key(tmp_path, "command_svc")


def test_one_key_cannot_be_bound_to_two_signers(tmp_path: Path) -> None:
    keys.init_keys(tmp_path, ("query_svc",))
    doc = json.loads((tmp_path / "trusted.json").read_text())
    doc["signers"]["gateway"] = doc["signers"]["query_svc"]
    (tmp_path / "trusted.json").write_text(json.dumps(doc))
    with pytest.raises(SettingsError, match="two signers"):
        keys.load_trusted(tmp_path)


def test_a_watched_file_reloads_on_change_and_keeps_the_old_value_on_a_bad_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"n": 1}')
    now = [0.0]

    def load() -> int:
        try:
            return int(json.loads(path.read_text())["n"])
        except ValueError:
            raise SettingsError("bad") from None

    watched = keys.WatchedFile([path], load, check_every=1.0, clock=lambda: now[0])
    path.write_text('{"n": 2}')
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert watched.get() == 1  # not looked at yet
    now[0] = 2.0
    assert watched.get() == 2
    path.write_text("{half")
    os.utime(path, (time.time() + 10, time.time() + 10))
    now[0] = 4.0
    assert watched.get() == 2


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys.main(["init", "--dir", str(tmp_path)]) == 0
    assert keys.main(["rotate", "--dir", str(tmp_path), "--signer", "query_svc"]) == 0
    assert keys.main(["show", "--dir", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 2)[-1])
    assert len(shown["keys"]) == 2
    assert keys.main(["prune", "--dir", str(tmp_path), "--ttl", "900"]) == 0
    assert keys.main(["rotate", "--dir", str(tmp_path / "none")]) == 2
