"""Email claims taken and released by events."""

from __future__ import annotations

import pytest

from domain import (
    EMAIL_CLAIM_NAMESPACE,
    ClaimChanges,
    EmailChanged,
    LoginRecorded,
    PasswordChanged,
    UserDeactivated,
    claims_for,
)

from .factories import EMAIL, envelope, register

pytestmark = pytest.mark.unit

ENVELOPE = envelope()


def test_namespace() -> None:
    assert EMAIL_CLAIM_NAMESPACE == "user.email"


def test_user_created_takes_its_email() -> None:
    assert claims_for(register(email="Alice@Example.com")[0]) == ClaimChanges(take=(EMAIL,))


def test_email_changed_takes_new_and_releases_old() -> None:
    event = EmailChanged(**ENVELOPE, old_email=EMAIL, new_email="bob@example.org")
    assert claims_for(event) == ClaimChanges(take=("bob@example.org",), release=(EMAIL,))


def test_deactivation_keeps_the_email_claimed() -> None:
    changes = claims_for(UserDeactivated(**ENVELOPE, reason="bye"))
    assert changes == ClaimChanges()
    assert changes.is_empty


@pytest.mark.parametrize(
    "event",
    [
        PasswordChanged(**ENVELOPE, password_hash="h"),
        LoginRecorded(**ENVELOPE, client_address=""),
        EmailChanged(**ENVELOPE, old_email=EMAIL, new_email=EMAIL),
    ],
    ids=["password", "login", "same-email"],
)
def test_other_events_touch_no_claims(
    event: PasswordChanged | LoginRecorded | EmailChanged,
) -> None:
    assert claims_for(event).is_empty
