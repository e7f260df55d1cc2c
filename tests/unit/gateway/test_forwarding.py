"""Headers forwarded to gRPC metadata, checked before any call."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.forwarding import call_metadata

pytestmark = pytest.mark.unit


def test_known_headers_are_forwarded_and_the_client_address_added() -> None:
    metadata, correlation = call_metadata(
        {
            "authorization": "Bearer abc",
            "x-correlation-id": "corr-1",
            "idempotency-key": "key-1",
            "x-min-position": "42",
            "x-forwarded-for": "6.6.6.6",
            "cookie": "secret",
        },
        "10.1.2.3",
    )
    assert correlation == "corr-1"
    assert metadata == [
        ("authorization", "Bearer abc"),
        ("x-correlation-id", "corr-1"),
        ("idempotency-key", "key-1"),
        ("x-min-position", "42"),
        ("x-forwarded-for", "10.1.2.3"),
    ]


def test_a_correlation_id_is_made_when_missing() -> None:
    metadata, correlation = call_metadata({}, None)
    assert len(correlation) == 36
    assert metadata == [("x-correlation-id", correlation)]


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("x-min-position", "abc", "X-Min-Position: expected a non-negative integer"),
        ("x-min-position", "-1", "X-Min-Position: expected a non-negative integer"),
        ("idempotency-key", "é", "Idempotency-Key: header must be printable ASCII"),
        ("x-correlation-id", "x" * 129, "X-Correlation-Id: header longer than 128"),
    ],
)
def test_bad_headers_are_400_naming_the_header(header: str, value: str, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        call_metadata({header: value}, None)
    assert caught.value.status == 400
    assert caught.value.message.startswith(message)
