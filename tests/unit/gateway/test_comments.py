"""Comments of the contract, keyed by symbol."""

from __future__ import annotations

import pytest

from gateway.comments import clean, summary, symbol_comments
from service_kit import descriptors

pytestmark = pytest.mark.unit


def test_comments_of_every_kind_of_symbol() -> None:
    comments = symbol_comments(descriptors.descriptor_set())
    assert comments["cqrs.query.v1.User"].startswith("A user as the read model holds it")
    assert comments["cqrs.query.v1.User.email"] == "Current email, lower-case."
    assert comments["cqrs.query.v1.QueryService.GetUser"].startswith("One user of the read model")
    assert comments["cqrs.eventstore.v1.EventStoreService"].startswith("EventStoreService stores")
    assert comments["cqrs.common.v1.UserStatus"] == "Lifecycle status of a user account."
    assert comments["cqrs.common.v1.UserStatus.USER_STATUS_ACTIVE"].startswith("The account can")
    assert (
        comments["cqrs.eventstore.v1.GetStateAtRequest.point"] == "The point in the stream's past."
    )
    assert comments["cqrs.eventstore.v1.SubscribeResponse.event"].startswith("The next event")


def test_clean_and_summary() -> None:
    assert clean(" First line.\n Second line.\n") == "First line.\nSecond line."
    assert summary("Does a thing. Then more.\nAnd more.") == "Does a thing."
    assert summary("No full stop") == "No full stop"
