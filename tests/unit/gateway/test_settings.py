"""Gateway settings from the environment; a bad value names its variable."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit

SECRET: dict[str, str] = {}  # no secret: the gateway reads its own key at start


def test_defaults() -> None:
    settings = GatewaySettings.from_env(SECRET)
    assert settings.host == "127.0.0.1"
    assert settings.ports == (8088, 8089, 8090)
    assert settings.target_of("cqrs.eventstore.v1.EventStoreService") == "127.0.0.1:9090"
    assert settings.target_of("cqrs.command.v1.CommandService") == "127.0.0.1:9091"
    assert settings.target_of("cqrs.query.v1.QueryService") == "127.0.0.1:9095"
    assert settings.target_of("nope.Service") is None
    assert settings.call_timeout == 30.0
    assert settings.max_body_bytes == 1024 * 1024
    assert [b.key for b in settings.backends] == ["store", "command", "query"]


def test_overrides() -> None:
    settings = GatewaySettings.from_env(
        {
            **SECRET,
            "GATEWAY_PORTS": " 9000 , 0,0",
            "GATEWAY_HOST": "0.0.0.0",
            "QUERY_GRPC_TARGET": "query:7000",
        }
    )
    assert settings.ports == (9000, 0, 0)
    assert settings.host == "0.0.0.0"
    assert settings.target_of("cqrs.query.v1.QueryService") == "query:7000"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JWT_TTL_SECONDS": "0"}, "JWT_TTL_SECONDS"),
        ({**SECRET, "GATEWAY_PORTS": "80,x"}, "GATEWAY_PORTS"),
        ({**SECRET, "GATEWAY_PORTS": "70000"}, "GATEWAY_PORTS"),
        ({**SECRET, "GATEWAY_PORTS": "8088,8088"}, "GATEWAY_PORTS"),
        ({**SECRET, "STORE_GRPC_TARGET": "nohostport"}, "STORE_GRPC_TARGET"),
        ({**SECRET, "STORE_GRPC_TARGET": "a:1,nohostport"}, "STORE_GRPC_TARGET"),
        # Only the store has a standby to follow: other backends take one address.
        ({**SECRET, "COMMAND_GRPC_TARGET": "a:1,b:2"}, "COMMAND_GRPC_TARGET"),
        ({**SECRET, "GATEWAY_CALL_TIMEOUT_SECONDS": "0"}, "GATEWAY_CALL_TIMEOUT_SECONDS"),
        ({**SECRET, "GATEWAY_MAX_BODY_BYTES": "abc"}, "GATEWAY_MAX_BODY_BYTES"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        GatewaySettings.from_env(env)


def test_the_store_may_be_a_leader_and_its_standby() -> None:
    settings = GatewaySettings.from_env({**SECRET, "STORE_GRPC_TARGET": "s1:9090, s2:9090"})
    assert settings.target_of("cqrs.eventstore.v1.EventStoreService") == "s1:9090,s2:9090"
