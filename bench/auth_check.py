"""``python -m bench.auth_check``: what checking a token costs per call, in-process.

Prints, for N calls: the signature check of a new token (HS256 with a
shared secret, as before issue 12, and EdDSA as now), and the per-call path
of a token already seen (the verified-token cache hit plus the revocation
view's two lookups), which is what every call after a client's first pays.
Figures, not a test; the end-to-end rates are ``python -m bench --only 3,7``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import jwt

from service_kit import keys
from service_kit.auth import ROLE_USER, Principal, TokenSigner, TokenVerifier
from service_kit.revocation import Ended, RevocationView


def _per_call(fn: object, calls: int) -> float:
    assert callable(fn)
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    calls = parser.parse_args().calls

    secret = "s" * 48
    claims = {"sub": "u", "role": ROLE_USER, "iat": int(time.time()), "exp": int(time.time()) + 900}
    hs = jwt.encode(claims, secret, algorithm="HS256")
    key = keys.generate_signing_key(keys.USER_TOKEN_ISSUER)
    trusted = {key.kid: keys.TrustedKey(key.signer, key.kid, key.private_key.public_key())}
    token, _ = TokenSigner(lambda: key).issue(
        Principal("u", "", ROLE_USER, "sid", 3), now=datetime.now(UTC)
    )
    public = key.private_key.public_key()
    verifier = TokenVerifier(lambda: trusted)
    view = RevocationView(horizon=1020)
    view.start_from(0, ready_at=0)
    for i in range(10_000):  # a view holding ten thousand recent revocations
        view.apply(Ended(f"user-{i}", 5, f"s-{i}" if i % 2 else "", time.time(), "x"), i + 1)

    def cached_check() -> None:
        principal, _ = verifier.decode_with_expiry(token)
        view.revoked(principal)

    rows = [
        (
            "HS256 signature check (before)",
            _per_call(lambda: jwt.decode(hs, secret, algorithms=["HS256"]), calls // 10),
        ),
        (
            "EdDSA signature check (now, a token's first call)",
            _per_call(lambda: jwt.decode(token, public, algorithms=["EdDSA"]), calls // 10),
        ),
        ("cached token + revocation check (now, every later call)", _per_call(cached_check, calls)),
        (
            "revocation check alone (10,000 revocations held)",
            _per_call(lambda: view.revoked(Principal("u", "", ROLE_USER, "sid", 3)), calls),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:8.2f} us/call")


if __name__ == "__main__":
    main()
