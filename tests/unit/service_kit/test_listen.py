"""Listen addresses: a bad one is a SettingsError naming the variable; one that
cannot be bound is a one-line OSError naming the address and the variable."""

from __future__ import annotations

import socket

import pytest

from service_kit.server import check_bindable
from service_kit.settings import SettingsError, env_listen

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", ["nonsense", "host:", ":9090", "127.0.0.1:70000", "h:p"])
def test_a_malformed_listen_address_names_its_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^STORE_GRPC_LISTEN="):
        env_listen({"STORE_GRPC_LISTEN": value}, "STORE_GRPC_LISTEN", "127.0.0.1:9090")


@pytest.mark.parametrize("value", ["127.0.0.1:0", "[::1]:9090", "0.0.0.0:9090"])
def test_well_formed_listen_addresses_pass(value: str) -> None:
    assert env_listen({"X": value}, "X", "127.0.0.1:1") == value


def test_a_busy_port_is_one_line_naming_address_and_variable() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        address = f"127.0.0.1:{held.getsockname()[1]}"
        with pytest.raises(OSError) as caught:
            check_bindable(address, "QUERY_GRPC_LISTEN")
    message = str(caught.value)
    assert message.startswith(f"cannot listen on {address} (QUERY_GRPC_LISTEN): ")
    assert "\n" not in message


def test_an_unknown_host_is_one_line() -> None:
    with pytest.raises(OSError, match=r"unknown host"):
        check_bindable("no-such-host.invalid:9000", "STORE_GRPC_LISTEN")
