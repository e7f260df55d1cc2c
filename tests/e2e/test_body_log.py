"""The no-hash check itself: it must find every bcrypt variant (no system needed)."""

from __future__ import annotations

import pytest

from tests.e2e.body_log import BCRYPT_PREFIXES, BodyLog, find_hash

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("prefix", BCRYPT_PREFIXES)
def test_every_bcrypt_variant_is_found(prefix: str) -> None:
    log = BodyLog()
    log.add("clean", b'{"password_hash":"[REDACTED]"}')
    log.add("leaky", f'{{"password_hash":"{prefix}04{"x" * 53}"}}'.encode())
    leaks = log.leaks()
    assert [leak.source for leak in leaks] == ["leaky"]
    assert prefix in leaks[0].excerpt


def test_a_clean_body_is_clean() -> None:
    assert find_hash('{"state":{"password_version":2},"price":"$2"}') == -1
