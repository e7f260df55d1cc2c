"""Gateway settings, parsed once from the environment.

A bad value stops the gateway at start with a message naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from gateway.connection_limits import PARSERS, Parser
from gateway.cors import parse_origins
from gateway.in_flight_limits import DEFAULT_PER_CLIENT
from service_kit.auth import TokenSettings
from service_kit.settings import SettingsError, env_choice, env_float, env_int, env_str, env_targets


@dataclass(frozen=True, slots=True)
class BackendTarget:
    """Where one gRPC service lives.

    ``key`` is the short name /health reports it under ("store", ...).
    """

    key: str
    service: str
    target: str


# Which gRPC service answers where. A service present in the descriptor set
# but absent here gets routes that answer 503 (no backend configured).
_BACKENDS: tuple[tuple[str, str, str, str], ...] = (
    ("store", "cqrs.eventstore.v1.EventStoreService", "STORE_GRPC_TARGET", "127.0.0.1:9090"),
    ("command", "cqrs.command.v1.CommandService", "COMMAND_GRPC_TARGET", "127.0.0.1:9091"),
    ("query", "cqrs.query.v1.QueryService", "QUERY_GRPC_TARGET", "127.0.0.1:9095"),
)

STORE_SERVICE = _BACKENDS[0][1]


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Every knob of the gateway.

    Invariants: ``ports`` is non-empty with no repeated non-zero port (0 picks
    a free one, which tests use); all durations are positive. ``tokens``
    says where the gateway's own signing key is (for /health's event count).
    ``cors_origins`` are the origins CORS allows (none: CORS off; :mod:`gateway.cors`).
    ``read_timeout``, ``max_connections`` and ``max_connections_per_client``
    bound slow and greedy clients (:mod:`gateway.connection_limits`);
    ``max_in_flight_per_client`` the requests one client address has going
    at once (:mod:`gateway.in_flight_limits`).
    ``access_log``: uvicorn's line per request (``GATEWAY_ACCESS_LOG=on``); off by
    default because it costs about as much as parsing the request.
    ``http_parser``: uvicorn's request parser (``GATEWAY_HTTP_PARSER``), the C
    httptools by default; h11 (pure Python) for comparison.
    """

    host: str
    ports: tuple[int, ...]
    backends: tuple[BackendTarget, ...]
    tokens: TokenSettings
    call_timeout: float
    health_timeout: float
    max_body_bytes: int
    shutdown_grace: float
    cors_origins: tuple[str, ...] = ()
    read_timeout: float = 10.0
    max_connections: int = 1000
    max_connections_per_client: int = 100
    max_in_flight_per_client: int = DEFAULT_PER_CLIENT
    access_log: bool = False
    http_parser: Parser = "httptools"

    def target_of(self, service: str) -> str | None:
        """The address of a gRPC service, or None when none is configured."""
        for backend in self.backends:
            if backend.service == service:
                return backend.target
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        backends = tuple(
            BackendTarget(key, service, _target(env, var, default))
            for key, service, var, default in _BACKENDS
        )
        return cls(
            host=env_str(env, "GATEWAY_HOST", "127.0.0.1"),
            ports=_ports(env_str(env, "GATEWAY_PORTS", "8088,8089,8090")),
            backends=backends,
            tokens=TokenSettings.from_env(env),
            call_timeout=env_float(
                env, "GATEWAY_CALL_TIMEOUT_SECONDS", 30.0, minimum=0.1, maximum=3600.0
            ),
            health_timeout=env_float(
                env, "GATEWAY_HEALTH_TIMEOUT_SECONDS", 2.0, minimum=0.05, maximum=60.0
            ),
            max_body_bytes=env_int(
                env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024, minimum=1024, maximum=64 * 1024 * 1024
            ),
            shutdown_grace=env_float(
                env, "GATEWAY_SHUTDOWN_GRACE_SECONDS", 5.0, minimum=0.0, maximum=600.0
            ),
            cors_origins=parse_origins(env_str(env, "CORS_ALLOWED_ORIGINS", "")),
            read_timeout=env_float(
                env, "GATEWAY_READ_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=600.0
            ),
            max_connections=env_int(
                env, "GATEWAY_MAX_CONNECTIONS", 1000, minimum=1, maximum=1_000_000
            ),
            max_connections_per_client=env_int(
                env, "GATEWAY_MAX_CONNECTIONS_PER_CLIENT", 100, minimum=1, maximum=1_000_000
            ),
            max_in_flight_per_client=env_int(
                env,
                "GATEWAY_MAX_IN_FLIGHT_PER_CLIENT",
                DEFAULT_PER_CLIENT,
                minimum=1,
                maximum=1_000_000,
            ),
            access_log=env_choice(env, "GATEWAY_ACCESS_LOG", "off", ("off", "on")) == "on",
            http_parser=cast(Parser, env_choice(env, "GATEWAY_HTTP_PARSER", PARSERS[0], PARSERS)),
        )


def _ports(raw: str) -> tuple[int, ...]:
    ports: list[int] = []
    for part in raw.split(","):
        text = part.strip()
        if not text.isdigit() or int(text) > 65535:
            raise SettingsError(f"GATEWAY_PORTS={raw!r}: {text!r} is not a port (0..65535)")
        port = int(text)
        if port != 0 and port in ports:
            raise SettingsError(f"GATEWAY_PORTS={raw!r}: port {port} is listed twice")
        ports.append(port)
    return tuple(ports)


def _target(env: Mapping[str, str], name: str, default: str) -> str:
    if name == "STORE_GRPC_TARGET":  # a leader and its standbys: gateway.backends
        return env_targets(env, name, default)
    value = env_str(env, name, default)
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or "," in value:
        raise SettingsError(f"{name}={value!r}: expected host:port")
    return value
