"""The Kafka settings of store_svc (relay) and query_svc (event source)."""

from __future__ import annotations

import pytest

from query_svc.settings import QuerySettings
from service_kit.settings import SettingsError
from store_svc.settings import RelaySettings, StoreSettings

pytestmark = pytest.mark.unit


def test_the_relay_is_off_on_the_embedded_defaults() -> None:
    relay = StoreSettings.from_env({}).relay
    assert relay == RelaySettings(enabled=False)


def test_a_broker_turns_the_relay_on_unless_told_off() -> None:
    on = RelaySettings.from_env({"KAFKA_BROKER": "k1:9092,k2:9092", "KAFKA_TOPIC": "t.1"})
    assert (on.enabled, on.broker, on.topic) == (True, "k1:9092,k2:9092", "t.1")
    off = RelaySettings.from_env({"KAFKA_BROKER": "k1:9092", "STORE_RELAY": "off"})
    assert not off.enabled
    forced = RelaySettings.from_env({"STORE_RELAY": "kafka", "STORE_RELAY_SAVE_INTERVAL_MS": "50"})
    assert (forced.enabled, forced.broker, forced.save_interval) == (True, "127.0.0.1:9092", 0.05)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"STORE_RELAY": "rabbit"}, "STORE_RELAY"),
        ({"KAFKA_TOPIC": "no spaces"}, "KAFKA_TOPIC"),
        ({"STORE_RELAY_SAVE_INTERVAL_MS": "0"}, "STORE_RELAY_SAVE_INTERVAL_MS"),
    ],
)
def test_a_bad_relay_value_names_its_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        StoreSettings.from_env(env)


def test_query_svc_reads_the_topic_when_told() -> None:
    s = QuerySettings.from_env(
        {
            "QUERY_EVENT_SOURCE": "kafka",
            "KAFKA_BROKER": "k:1",
            "KAFKA_TOPIC": "events",
            "KAFKA_GROUP": "rm-1",
            "QUERY_KAFKA_GAP_TIMEOUT_MS": "250",
        }
    )
    assert s.event_source == "kafka"
    assert (s.kafka.broker, s.kafka.topic, s.kafka.group, s.kafka.gap_timeout) == (
        "k:1",
        "events",
        "rm-1",
        0.25,
    )
    default = QuerySettings.from_env({})
    assert default.event_source == "store"
    assert (default.kafka.topic, default.kafka.group) == ("user-events", "query-group")


def test_a_bad_gap_timeout_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="QUERY_KAFKA_GAP_TIMEOUT_MS"):
        QuerySettings.from_env({"QUERY_KAFKA_GAP_TIMEOUT_MS": "0"})
