"""The seed-type decoder itself: it must refuse every way an answer can differ (no system)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e import seed_shapes as shapes

pytestmark = pytest.mark.e2e

EVENT: dict[str, Any] = {
    "id": "e-1",
    "event_type": "user.created",
    "aggregate_id": "u-1",
    "payload": '{"email":"a@example.com"}',
    "timestamp": "2026-01-02T03:04:05.123456Z",
    "version": 1,
    "position": 9,  # our extra key: allowed, as Go ignores it
}


def test_a_seed_answer_decodes() -> None:
    decoded = shapes.decode(shapes.Events, {"events": [EVENT], "count": 1})
    assert decoded.events[0].data() == {"email": "a@example.com"}
    users = shapes.decode(
        list[shapes.User],
        [
            {
                "ID": "u",
                "Email": "a@example.com",
                "Status": "deactivated",
                "CreatedAt": "2026-01-02T03:04:05Z",
                "UpdatedAt": "2026-01-02T03:04:05+02:00",
            }
        ],
    )
    assert users[0].Status == "deactivated"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"payload": {"email": "a@example.com"}}, "$.events[0].payload"),  # an object, not text
        ({"payload": "[1, 2]"}, "$.events[0].payload"),  # text, but not an object
        ({"version": "1"}, "$.events[0].version"),
        ({"version": True}, "$.events[0].version"),
        ({"timestamp": "2026-01-02 03:04:05"}, "$.events[0].timestamp"),
        ({"id": None}, "$.events[0].id"),
    ],
)
def test_a_wrong_type_is_refused_naming_the_key(change: dict[str, Any], where: str) -> None:
    with pytest.raises(shapes.ShapeError, match=rf"^{re.escape(where)}:"):
        shapes.decode(shapes.Events, {"events": [{**EVENT, **change}], "count": 1})


STATE: dict[str, Any] = {
    "id": "u",
    "email": "a@example.com",
    "status": "active",
    "created_at": "2026-01-02T03:04:05Z",
    "updated_at": "2026-01-02T03:04:05Z",
    "version": 1,
    "event_count": 1,
}


def test_a_missing_key_or_a_wrong_container_is_refused() -> None:
    without_id = {k: v for k, v in EVENT.items() if k != "id"}
    with pytest.raises(shapes.ShapeError, match=r"no key 'id'"):
        shapes.decode(shapes.Event, without_id)
    with pytest.raises(shapes.ShapeError, match="expected an array"):
        shapes.decode(list[shapes.User], {"users": []})
    enum_name = {
        "aggregate_id": "u",
        "version": 1,
        "state": {**STATE, "status": "USER_STATUS_ACTIVE"},
    }
    with pytest.raises(shapes.ShapeError, match=r"^\$\.state\.status: expected one of"):
        shapes.decode(shapes.Snapshot, enum_name)
    times = {"time1": STATE["created_at"], "time2": STATE["updated_at"]}
    as_list = {"user_id": "u", **times, "before": STATE, "after": STATE, "changes": []}
    with pytest.raises(shapes.ShapeError, match=r"^\$\.changes: expected an object"):
        shapes.decode(shapes.Comparison, as_list)
