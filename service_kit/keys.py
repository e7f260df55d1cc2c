"""Key material: each service's Ed25519 signing key, the trusted public keys, the mail key.

Tokens are EdDSA (Ed25519) JWTs. Every signer (a service that mints tokens)
holds its own private key and nothing else; every verifier holds only
public keys, each bound to the signer it belongs to. So a service that can
check a token cannot mint one, and a signer can mint only what its binding
allows (``service_kit.auth``: user and admin tokens only from
:data:`USER_TOKEN_ISSUER`, a service token only for the signer's own name).

One folder (``KEYS_DIR``, default ``<DATA_DIR>/keys``) holds:

- ``<signer>.signing.json``: that signer's private key as a JWK
  (``{"signer": ..., "key": {"kty": "OKP", "crv": "Ed25519", "x", "d", "kid", ...}}``),
  mode 0600. Only that service reads it (docker-compose mounts each as the
  service's own secret);
- ``trusted.json``: ``{"signers": {"<signer>": [public JWK, ...]}}``, every
  signer's current public key and the previous ones, a retired key carrying
  ``"retired_at"`` (Unix seconds). Public: every service reads it;
- ``mail.key``: 32 random bytes (base64url) from which one-time mail
  tokens are derived (``service_kit.mail_tokens``); command_svc and query_svc
  read it.

Invariants:
- a key id (``kid``) is the key's RFC 7638 thumbprint, so it names exactly one key;
- every write replaces a file atomically (written aside, then renamed), so a
  reader sees the old file or the new one, never half of one;
- a retired key stays trusted for the longest token lifetime after its
  retirement (rotation never cuts a valid token short); ``prune`` removes it
  after that, and verifiers ignore it after that even before a prune.

Rotation (``python -m service_kit.keys rotate --dir DIR --signer query_svc``)
makes a new key the signer's active one and keeps the old public key in
``trusted.json`` as retired. Running services re-read these files within a
second of a change (:class:`WatchedFile`), so no restart is needed where
the files are shared (``make up``); see docs/security.md for docker-compose.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from service_kit.settings import SettingsError

__all__ = [
    "DEFAULT_SIGNERS",
    "MAIL_KEY_FILE",
    "TRUSTED_FILE",
    "USER_TOKEN_ISSUER",
    "KeyFileError",
    "SigningKey",
    "TrustedKey",
    "WatchedFile",
    "generate_signing_key",
    "init_keys",
    "jwks",
    "load_mail_key",
    "load_signing_key",
    "load_trusted",
    "prune_keys",
    "rotate_key",
    "signing_file",
]

USER_TOKEN_ISSUER: Final = "query_svc"
"""The one signer whose keys may sign user and admin tokens (it runs Login)."""

DEFAULT_SIGNERS: Final[tuple[str, ...]] = ("query_svc", "command_svc", "gateway")
"""Services that mint tokens: each calls others with its own service identity."""

TRUSTED_FILE: Final = "trusted.json"
MAIL_KEY_FILE: Final = "mail.key"
_ALG: Final = "EdDSA"
_CRV: Final = "Ed25519"
_PUBLIC_MEMBERS: Final = ("kty", "crv", "x", "kid", "alg", "use")


class KeyFileError(SettingsError):
    """A key file is missing or unreadable; the message names ``KEYS_DIR`` and the fix."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def thumbprint(x: str) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key ``x``."""
    canonical = json.dumps(
        {"crv": _CRV, "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signer's private key and its id."""

    signer: str
    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (only the standard members)."""
        x = _b64(_raw_public(self.private_key.public_key()))
        return {"kty": "OKP", "crv": _CRV, "x": x, "kid": self.kid, "alg": _ALG, "use": "sig"}

    def private_jwk(self) -> dict[str, str]:
        raw = self.private_key.private_bytes_raw()
        return {**self.public_jwk(), "d": _b64(raw)}


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key a verifier accepts, the signer it is bound to, and its retirement."""

    signer: str
    kid: str
    public_key: Ed25519PublicKey = field(repr=False)
    retired_at: int | None = None

    def usable(self, now: float, max_token_ttl: int) -> bool:
        """A retired key is accepted for one token lifetime after its retirement."""
        return self.retired_at is None or now <= self.retired_at + max_token_ttl

    def jwk(self) -> dict[str, str]:
        """The standard JWK of this key (no private or retirement members)."""
        x = _b64(_raw_public(self.public_key))
        return {"kty": "OKP", "crv": _CRV, "x": x, "kid": self.kid, "alg": _ALG, "use": "sig"}


def generate_signing_key(signer: str) -> SigningKey:
    """A fresh Ed25519 key for ``signer``."""
    private = Ed25519PrivateKey.generate()
    return SigningKey(signer, thumbprint(_b64(_raw_public(private.public_key()))), private)


def signing_file(directory: Path, signer: str) -> Path:
    """Where ``signer``'s private key lives."""
    return directory / f"{signer}.signing.json"


def _missing(path: Path, what: str) -> KeyFileError:
    return KeyFileError(
        f"KEYS_DIR: {what} {path} is missing or unreadable; create the keys with "
        f"`python -m service_kit.keys init --dir {path.parent}`"
    )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise _missing(path, what) from None


def _public_from_jwk(jwk: Mapping[str, Any], path: Path) -> tuple[str, Ed25519PublicKey]:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != _CRV or not isinstance(jwk.get("x"), str):
        raise KeyFileError(f"KEYS_DIR: {path} holds a key that is not an Ed25519 JWK")
    try:
        public = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    except ValueError:
        raise KeyFileError(f"KEYS_DIR: {path} holds a malformed Ed25519 key") from None
    kid = thumbprint(jwk["x"])
    if jwk.get("kid", kid) != kid:
        raise KeyFileError(f"KEYS_DIR: {path}: kid {jwk.get('kid')!r} does not match its key")
    return kid, public


def load_signing_key(directory: Path, signer: str) -> SigningKey:
    """``signer``'s private key; :class:`KeyFileError` if it is missing or malformed."""
    path = signing_file(directory, signer)
    data = _read_json(path, f"the signing key of {signer}")
    jwk = data.get("key") if isinstance(data, dict) else None
    if (
        not isinstance(jwk, dict)
        or data.get("signer") != signer
        or not isinstance(jwk.get("d"), str)
    ):
        raise KeyFileError(f"KEYS_DIR: {path} is not a signing key file of {signer}")
    kid, public = _public_from_jwk(jwk, path)
    try:
        private = Ed25519PrivateKey.from_private_bytes(_unb64(jwk["d"]))
    except ValueError:
        raise KeyFileError(f"KEYS_DIR: {path} holds a malformed private key") from None
    if _raw_public(private.public_key()) != _raw_public(public):
        raise KeyFileError(f"KEYS_DIR: {path}: the private key does not match its public key")
    return SigningKey(signer, kid, private)


def load_trusted(directory: Path) -> dict[str, TrustedKey]:
    """Every trusted public key by kid; :class:`KeyFileError` if the file is bad."""
    path = directory / TRUSTED_FILE
    data = _read_json(path, "the trusted public keys")
    signers = data.get("signers") if isinstance(data, dict) else None
    if not isinstance(signers, dict):
        raise KeyFileError(f"KEYS_DIR: {path} has no 'signers' object")
    keys: dict[str, TrustedKey] = {}
    for signer, entries in signers.items():
        if not isinstance(entries, list):
            raise KeyFileError(f"KEYS_DIR: {path}: signers.{signer} is not a list")
        for jwk in entries:
            if not isinstance(jwk, dict):
                raise KeyFileError(f"KEYS_DIR: {path}: signers.{signer} holds a non-object")
            kid, public = _public_from_jwk(jwk, path)
            retired = jwk.get("retired_at")
            if kid in keys and keys[kid].signer != signer:
                # One key bound to two signers would let either mint as the other.
                raise KeyFileError(f"KEYS_DIR: {path}: key {kid} is listed for two signers")
            keys[kid] = TrustedKey(
                signer, kid, public, int(retired) if isinstance(retired, int | float) else None
            )
    return keys


def load_mail_key(directory: Path) -> bytes:
    """The key one-time mail tokens are derived from (32 bytes)."""
    path = directory / MAIL_KEY_FILE
    try:
        key = _unb64(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise _missing(path, "the mail token key") from None
    if len(key) < 32:
        raise KeyFileError(f"KEYS_DIR: {path} must hold at least 32 random bytes")
    return key


def jwks(
    trusted: Mapping[str, TrustedKey], signer: str, *, now: float, max_token_ttl: int
) -> list[dict[str, str]]:
    """The standard JWK Set members of ``signer``'s usable keys, current key first."""
    usable = [k for k in trusted.values() if k.signer == signer and k.usable(now, max_token_ttl)]
    usable.sort(key=lambda k: (k.retired_at is not None, -(k.retired_at or 0)))
    return [k.jwk() for k in usable]


# -- files ------------------------------------------------------------------------


def _write(path: Path, data: str, *, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _trusted_document(directory: Path) -> dict[str, list[dict[str, Any]]]:
    path = directory / TRUSTED_FILE
    if not path.exists():
        return {}
    data = _read_json(path, "the trusted public keys")
    signers = data.get("signers", {}) if isinstance(data, dict) else {}
    return {name: list(entries) for name, entries in signers.items()}


def _save_trusted(directory: Path, signers: Mapping[str, list[dict[str, Any]]]) -> None:
    text = json.dumps({"signers": dict(signers)}, indent=2, sort_keys=True) + "\n"
    _write(directory / TRUSTED_FILE, text, private=False)


def _save_signing(directory: Path, key: SigningKey) -> None:
    text = json.dumps({"signer": key.signer, "key": key.private_jwk()}, indent=2) + "\n"
    _write(signing_file(directory, key.signer), text, private=True)


def init_keys(directory: Path, signers: Sequence[str] = DEFAULT_SIGNERS) -> list[str]:
    """Creates whatever is missing (a key per signer, ``trusted.json``, ``mail.key``).

    Idempotent: existing keys are kept. Returns what it created.
    """
    directory.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    trusted = _trusted_document(directory)
    for signer in signers:
        path = signing_file(directory, signer)
        if path.exists():
            key = load_signing_key(directory, signer)
        else:
            key = generate_signing_key(signer)
            _save_signing(directory, key)
            created.append(path.name)
        entries = trusted.setdefault(signer, [])
        if not any(e.get("kid") == key.kid for e in entries):
            entries.insert(0, key.public_jwk())
            created.append(f"{TRUSTED_FILE}:{signer}")
    if any(name.startswith(TRUSTED_FILE) for name in created):
        _save_trusted(directory, trusted)  # rewritten only when it changed
    mail = directory / MAIL_KEY_FILE
    if not mail.exists():
        _write(mail, _b64(secrets.token_bytes(32)) + "\n", private=True)
        created.append(MAIL_KEY_FILE)
    return created


def rotate_key(directory: Path, signer: str, *, now: float | None = None) -> SigningKey:
    """Makes a new key ``signer``'s active one; the old one stays trusted, marked retired.

    ``trusted.json`` is written first, so a verifier knows the new key before
    any token is signed with it.
    """
    stamp = int(time.time() if now is None else now)
    old = load_signing_key(directory, signer)
    new = generate_signing_key(signer)
    trusted = _trusted_document(directory)
    entries = trusted.setdefault(signer, [])
    for entry in entries:
        if entry.get("kid") == old.kid and "retired_at" not in entry:
            entry["retired_at"] = stamp
    if not any(e.get("kid") == old.kid for e in entries):
        entries.append({**old.public_jwk(), "retired_at": stamp})
    entries.insert(0, new.public_jwk())
    _save_trusted(directory, trusted)
    _save_signing(directory, new)
    return new


def prune_keys(directory: Path, *, max_token_ttl: int, now: float | None = None) -> list[str]:
    """Drops retired keys whose tokens have all expired; returns their kids."""
    moment = time.time() if now is None else now
    trusted = _trusted_document(directory)
    dropped: list[str] = []
    for signer, entries in trusted.items():
        kept = []
        for entry in entries:
            retired = entry.get("retired_at")
            if isinstance(retired, int | float) and moment > retired + max_token_ttl:
                dropped.append(str(entry.get("kid")))
            else:
                kept.append(entry)
        trusted[signer] = kept
    _save_trusted(directory, trusted)
    return dropped


T = TypeVar("T")


class WatchedFile(Generic[T]):
    """A value loaded from files, re-loaded when one of them changes.

    ``get()`` looks at the files' modification times at most once per
    ``check_every`` seconds (a ``stat`` each), so calling it on every request
    is cheap. A reload that fails keeps the previous value (and is retried
    at the next check): a key file caught half-written by an editor must not
    take a running service down. Thread-safe.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        load: Callable[[], T],
        *,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = tuple(paths)
        self._load = load
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self._value = load()  # the first load's errors are the caller's (at start)
        self._checked = clock()

    def _stamps(self) -> tuple[float, ...]:
        stamps = []
        for path in self._paths:
            try:
                stamps.append(path.stat().st_mtime)
            except OSError:
                stamps.append(-1.0)
        return tuple(stamps)

    def get(self) -> T:
        now = self._clock()
        if now - self._checked < self._check_every:
            return self._value
        with self._lock:
            self._checked = now
            stamp = self._stamps()
            if stamp != self._stamp:
                try:
                    self._value = self._load()
                    self._stamp = stamp
                except SettingsError:
                    pass  # keep serving with the keys we have; retried next check
        return self._value

    def reload_now(self) -> T:
        """Forces the next :meth:`get` to look at the files (an unknown key id was met)."""
        with self._lock:
            self._checked = float("-inf")
        return self.get()


# -- command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m service_kit.keys init|rotate|prune|show --dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m service_kit.keys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create every missing key (idempotent)")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument(
        "--signer",
        action="append",
        default=None,
        help=f"signer to create (repeatable; default: {', '.join(DEFAULT_SIGNERS)})",
    )
    rotate = sub.add_parser("rotate", help="give a signer a new active key")
    rotate.add_argument("--dir", type=Path, required=True)
    rotate.add_argument("--signer", default=USER_TOKEN_ISSUER)
    prune = sub.add_parser("prune", help="drop retired keys older than one token lifetime")
    prune.add_argument("--dir", type=Path, required=True)
    prune.add_argument("--ttl", type=int, required=True, help="JWT_TTL_SECONDS of the services")
    show = sub.add_parser("show", help="print a signer's public keys as a JWK Set")
    show.add_argument("--dir", type=Path, required=True)
    show.add_argument("--signer", default=USER_TOKEN_ISSUER)
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            created = init_keys(args.dir, tuple(args.signer or DEFAULT_SIGNERS))
            print(f"created: {', '.join(created)}" if created else "nothing to create")
        elif args.command == "rotate":
            key = rotate_key(args.dir, args.signer)
            print(f"{args.signer}: new active key {key.kid}; the previous one is retired")
        elif args.command == "prune":
            dropped = prune_keys(args.dir, max_token_ttl=args.ttl)
            print(f"dropped: {', '.join(dropped)}" if dropped else "nothing to drop")
        else:
            keys = jwks(load_trusted(args.dir), args.signer, now=time.time(), max_token_ttl=10**9)
            print(json.dumps({"keys": keys}, indent=2))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
