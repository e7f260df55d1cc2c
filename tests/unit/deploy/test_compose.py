"""docker-compose.yml checked without Docker: schema, images, ports, health, variables.

What each test guards is said in its docstring. The variables a service reads
are found by running the service's own ``Settings.from_env`` on a recording
mapping (plus a scan of its package for other reads), so a setting renamed in
the code fails here instead of being silently ignored in production.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, Final

import jsonschema
import pytest

from command_svc.settings import CommandSettings
from gateway.settings import GatewaySettings
from query_svc.settings import QuerySettings
from service_kit.observability import PROCESS_VARIABLES
from service_kit.settings import SettingsError
from store_svc.settings import StoreSettings
from tests.unit.deploy import compose_support as cs

pytestmark = pytest.mark.unit

# The services built from ./Dockerfile: compose service -> the module it runs.
APP_SERVICES: Final[Mapping[str, str]] = {
    "store-svc": "store_svc",
    "store-standby": "store_svc",  # the hot standby: same image and settings
    "command-svc": "command_svc",
    "query-svc": "query_svc",
    "gateway": "gateway",
}
SETTINGS: Final[Mapping[str, Callable[[Mapping[str, str]], object]]] = {
    "store_svc": StoreSettings.from_env,
    "command_svc": CommandSettings.from_env,
    "query_svc": QuerySettings.from_env,
    "gateway": GatewaySettings.from_env,
}

# Host ports as documented (the seed's table, README.md, docs/deploy.md).
DOCUMENTED_HOST_PORTS: Final[Mapping[str, tuple[int, ...]]] = {
    "gateway": (8088, 8089, 8090),
    "store-svc": (9090,),
    "command-svc": (9091,),
    "query-svc": (9095,),
    "kafka": (9092,),
    "postgres": (5433,),
    "clickhouse": (8123, 9000),
    "mailpit": (8025,),
}

# Variables set in the stack ahead of the code that will read them (none now);
# the test holds every other name to the code.
PENDING_VARIABLES: Final[frozenset[str]] = frozenset()

# Variables a service reads that the stack leaves unset on purpose, and why.
LEFT_UNSET: Final[Mapping[str, str]] = {
    "DATA_DIR": "embedded SQLite backends only; the image sets it for `docker run`",
    "MAIL_DIR": "mail goes to SMTP (Mailpit) in the stack, never to files",
}

SECRETS: Final = ("CLICKHOUSE_PASSWORD", "POSTGRES_QUERY_PASSWORD", "PII_MASTER_KEY")
# Key files each service gets in /run/secrets (KEYS_DIR): only its own private key.
KEY_FILES: Final[Mapping[str, set[str]]] = {
    "store-svc": {"trusted.json"},
    "store-standby": {"trusted.json"},
    "command-svc": {"trusted.json", "command_svc.signing.json", "mail.key"},
    "query-svc": {"trusted.json", "query_svc.signing.json", "mail.key"},
    "gateway": {"gateway.signing.json"},
}
DATABASE_MOUNTS: Final[Mapping[str, str]] = {
    "clickhouse": "/var/lib/clickhouse",
    "postgres": "/var/lib/postgresql/data",
    "kafka": "/var/lib/kafka/data",
}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return cs.load_raw()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cs.load_interpolated()


def _service(compose: Mapping[str, Any], name: str) -> dict[str, Any]:
    found = cs.services(compose).get(name)
    assert found is not None, f"service {name!r} is missing from docker-compose.yml"
    return found


def _healthcheck_text(service: Mapping[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


# ---------------------------------------------------------------- the schema ---


def test_vendored_schema_is_the_published_file() -> None:
    """deploy/compose-spec.json is byte for byte the file of check-jsonschema 0.39.0."""
    digest = hashlib.sha256(cs.SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest == cs.SCHEMA_SHA256, "compose-spec.json changed: see deploy/README.md"


@pytest.mark.parametrize("stage", ["raw", "interpolated"])
def test_matches_the_compose_specification(stage: str, raw: Any, compose: Any) -> None:
    schema = json.loads(cs.SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(raw if stage == "raw" else compose), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_uses_the_specification_format(raw: Mapping[str, Any]) -> None:
    """No obsolete ``version:`` key; a fixed project name (volume names depend on it)."""
    assert "version" not in raw
    assert raw.get("name") == "cqrs-users"


# ---------------------------------------------------------------- images ---


def test_images_are_pinned_to_explicit_tags(raw: Mapping[str, Any]) -> None:
    for name, service in cs.services(raw).items():
        if name in APP_SERVICES:
            assert "build" in service and "image" not in service, name
            continue
        image = str(service.get("image", ""))
        assert "$" not in image, f"{name}: image must not depend on the environment"
        repository, sep, tag = image.rpartition(":")
        assert sep and repository and "/" not in tag, f"{name}: {image!r} has no tag"
        assert tag != "latest", f"{name}: {image!r} is not pinned"


def test_infrastructure_images_are_the_chosen_ones(raw: Mapping[str, Any]) -> None:
    """Kafka 4.x (KRaft), a ClickHouse LTS line (YY.3 or YY.8), PostgreSQL 16."""
    images = {name: str(s.get("image", "")) for name, s in cs.services(raw).items()}
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", images["kafka"])
    assert images["kafka-init"] == images["kafka"]
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d\d\.[38](\.\d+)*", images["clickhouse"])
    assert images["postgres"] == "postgres:16"
    assert not any("zookeeper" in image for image in images.values())


# --------------------------------------------------------- app services ---


@pytest.mark.parametrize(("service_name", "module"), APP_SERVICES.items())
def test_command_is_a_module_of_the_repo(
    service_name: str, module: str, compose: Mapping[str, Any]
) -> None:
    """``command`` is the module the image's entrypoint (``python -m cqrs_users_server``) runs."""
    service = _service(compose, service_name)
    assert service.get("command") == [module]
    assert (cs.REPO / module / "__main__.py").is_file()
    assert importlib.util.find_spec(module) is not None


def test_every_service_restarts_and_checks_its_health(raw: Mapping[str, Any]) -> None:
    for name, service in cs.services(raw).items():
        restart = str(service.get("restart", ""))
        if name == "kafka-init":  # one-shot: retried on failure only, never after success
            assert restart.startswith("on-failure"), name
            continue
        assert restart in ("always", "unless-stopped"), f"{name}: restart={restart!r}"
        health = service.get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name}: no healthcheck"


def test_depends_on_targets_report_what_they_wait_for(raw: Mapping[str, Any]) -> None:
    """service_healthy needs a health check; service_completed_successfully a one-shot."""
    all_services = cs.services(raw)
    for name, service in all_services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long depends_on syntax"
        for target, spec in depends.items():
            assert target in all_services, f"{name} depends on unknown {target}"
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert (all_services[target].get("healthcheck") or {}).get("test"), target
            else:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
                assert not str(all_services[target].get("restart", "")).startswith(
                    ("always", "unless-stopped")
                )


def test_start_order_follows_the_calls(raw: Mapping[str, Any]) -> None:
    """Each service waits for what it calls at start (and Kafka delays nothing)."""
    waits = {
        name: set((service.get("depends_on") or {}).keys())
        for name, service in cs.services(raw).items()
    }
    assert waits["store-svc"] == {"clickhouse"}
    assert waits["command-svc"] == {"postgres", "store-svc"}  # its budgets live there
    assert waits["query-svc"] == {"postgres", "store-svc", "command-svc"}
    assert waits["gateway"] == {"store-svc", "command-svc", "query-svc"}
    assert waits["kafka-init"] == {"kafka"}


def test_app_services_are_hardened(compose: Mapping[str, Any]) -> None:
    for name in APP_SERVICES:
        service = _service(compose, name)
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert "user" not in service, f"{name}: the image's non-root user is the one to run as"


# ---------------------------------------------------------------- ports ---


def test_host_ports_are_the_documented_ones(compose: Mapping[str, Any]) -> None:
    published = {
        name: tuple(sorted(m.host_port for m in cs.port_mappings(service)))
        for name, service in cs.services(compose).items()
        if service.get("ports")
    }
    assert published == DOCUMENTED_HOST_PORTS


def test_databases_and_broker_are_published_on_loopback_only(compose: Mapping[str, Any]) -> None:
    for name in ("clickhouse", "postgres", "kafka"):
        for mapping in cs.port_mappings(_service(compose, name)):
            assert mapping.host_ip == "127.0.0.1", f"{name}: {mapping}"


def test_docs_list_every_host_port() -> None:
    text = (cs.REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for ports in DOCUMENTED_HOST_PORTS.values():
        for port in ports:
            assert re.search(rf"\b{port}\b", text), f"docs/deploy.md does not mention {port}"


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def test_servers_listen_where_ports_health_and_clients_point(compose: Mapping[str, Any]) -> None:
    """Listen address, published port, health probe and every client's target agree."""
    envs = {name: cs.environment(_service(compose, name)) for name in APP_SERVICES}
    listen_vars = {
        "store-svc": ("STORE_GRPC_LISTEN", "STORE_GRPC_TARGET"),
        "command-svc": ("COMMAND_GRPC_LISTEN", "COMMAND_GRPC_TARGET"),
        "query-svc": ("QUERY_GRPC_LISTEN", "QUERY_GRPC_TARGET"),
    }
    for name, (listen_var, target_var) in listen_vars.items():
        listen = envs[name][listen_var]
        assert listen.startswith("0.0.0.0:"), f"{name}: must listen on every interface"
        port = _port_of(listen)
        service = _service(compose, name)
        assert [m.container_port for m in cs.port_mappings(service)] == [port]
        assert f"127.0.0.1:{port}'" in _healthcheck_text(service)
        # The store's clients name its standby too, on the same port (failover).
        expected = f"{name}:{port}" + (f",store-standby:{port}" if name == "store-svc" else "")
        for client, env in envs.items():
            if target_var in env:
                assert env[target_var] == expected, f"{client}.{target_var}"
    standby = envs["store-standby"]
    assert standby["STORE_GRPC_LISTEN"] == envs["store-svc"]["STORE_GRPC_LISTEN"]
    assert standby["STORE_STANDBY"] == "1"
    assert cs.port_mappings(_service(compose, "store-standby")) == []  # internal only
    gateway = envs["gateway"]
    assert gateway["GATEWAY_HOST"] == "0.0.0.0"
    gateway_ports = [int(p) for p in gateway["GATEWAY_PORTS"].split(",")]
    mappings = cs.port_mappings(_service(compose, "gateway"))
    assert sorted(m.container_port for m in mappings) == sorted(gateway_ports)
    assert f"http://127.0.0.1:{gateway_ports[0]}/health" in _healthcheck_text(
        _service(compose, "gateway")
    )


def test_code_defaults_are_the_documented_ports() -> None:
    """The services' own defaults agree with the documented table."""
    env: dict[str, str] = {}
    assert _port_of(StoreSettings.from_env(env).listen) == 9090
    assert _port_of(CommandSettings.from_env(env).listen) == 9091
    assert _port_of(QuerySettings.from_env(env).listen) == 9095
    assert GatewaySettings.from_env(env).ports == DOCUMENTED_HOST_PORTS["gateway"]


# ------------------------------------------------------------ variables ---


def _read_by(module: str, env: Mapping[str, str]) -> set[str]:
    recording = cs.RecordingEnv(env)
    SETTINGS[module](recording)
    return recording.read


@pytest.mark.parametrize(("service_name", "module"), APP_SERVICES.items())
def test_settings_accept_the_stack_configuration(
    service_name: str, module: str, compose: Mapping[str, Any]
) -> None:
    """Each service starts with exactly this environment (no bad value, nothing missing)."""
    env = cs.environment(_service(compose, service_name))
    try:
        SETTINGS[module](env)
    except SettingsError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{service_name} would refuse to start: {exc}")


@pytest.mark.parametrize(("service_name", "module"), APP_SERVICES.items())
def test_every_variable_set_is_read_by_the_code(
    service_name: str, module: str, compose: Mapping[str, Any]
) -> None:
    env = cs.environment(_service(compose, service_name))
    known = (
        _read_by(module, env)
        | cs.env_names_in_source(module)
        | PENDING_VARIABLES
        | set(PROCESS_VARIABLES)
    )
    unknown = sorted(set(env) - known)
    assert not unknown, f"{service_name} sets variables its code never reads: {unknown}"


@pytest.mark.parametrize(("service_name", "module"), APP_SERVICES.items())
def test_every_setting_of_the_code_can_be_set(
    service_name: str, module: str, compose: Mapping[str, Any]
) -> None:
    """A setting the code reads is passed through (or deliberately left unset)."""
    env = cs.environment(_service(compose, service_name))
    missing = sorted(_read_by(module, env) - set(env) - set(LEFT_UNSET))
    assert not missing, (
        f"{service_name} reads {missing} but docker-compose.yml never sets them: add them "
        "(as NAME: ${NAME:-} for the code's default) and to .env.example"
    )


@pytest.mark.parametrize("service_name", APP_SERVICES)
def test_every_service_gets_the_logs_metrics_and_tracing_settings(
    service_name: str, compose: Mapping[str, Any]
) -> None:
    env = cs.environment(_service(compose, service_name))
    missing = sorted(set(PROCESS_VARIABLES) - set(env))
    assert not missing, f"{service_name} is not given {missing}"
    assert env["METRICS_PORT"] == "9464" and env["METRICS_HOST"] == "0.0.0.0"


def test_pending_variables_are_set_where_they_will_be_read(compose: Mapping[str, Any]) -> None:
    store = cs.environment(_service(compose, "store-svc"))
    query = cs.environment(_service(compose, "query-svc"))
    assert {"KAFKA_BROKER", "KAFKA_TOPIC"} <= set(store)
    assert set(PENDING_VARIABLES) <= set(query)
    assert store["KAFKA_BROKER"] == query["KAFKA_BROKER"] == "kafka:19092"


def test_env_example_lists_exactly_the_interpolated_variables(raw: Mapping[str, Any]) -> None:
    used: set[str] = set()
    for text in cs.walk_strings(raw):
        used.update(cs.variables_in(text))
    listed = set(cs.read_dotenv(cs.ENV_EXAMPLE))
    assert sorted(used - listed) == [], "used in docker-compose.yml, missing in .env.example"
    assert sorted(listed - used) == [], "in .env.example, unused by docker-compose.yml"


def test_secrets_are_required_and_not_shipped(raw: Mapping[str, Any]) -> None:
    """A secret has no default: the stack refuses to start until .env gives it."""
    for text in cs.walk_strings(raw):
        for name, op in cs.variables_in(text).items():
            if name in SECRETS:
                assert op == ":?", f"{name} must be interpolated as ${{{name}:?...}}"
    example = cs.read_dotenv(cs.ENV_EXAMPLE)
    for name in SECRETS:
        assert example[name] == "", f".env.example must not ship a value for {name}"
    with pytest.raises(cs.MissingVariable, match="CLICKHOUSE_PASSWORD"):
        cs.load_interpolated(example)


def test_each_service_gets_only_its_own_private_key(raw: Mapping[str, Any]) -> None:
    """Private keys are compose secrets; a service sees its own and the public ones."""
    declared = raw.get("secrets") or {}
    for spec in declared.values():
        assert str(spec.get("file", "")).startswith("./keys/"), spec
    for name, expected in KEY_FILES.items():
        service = cs.services(raw)[name]
        mounted = {s["target"] for s in service.get("secrets", [])}
        assert mounted == expected, name
        assert all(s["source"] in declared for s in service.get("secrets", []))
        assert cs.environment(service).get("KEYS_DIR") == "/run/secrets", name
    dockerignore = (cs.REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert "keys" in dockerignore, "private keys must never be baked into the image"


def test_empty_optional_values_mean_the_code_default(compose: Mapping[str, Any]) -> None:
    """`NAME: ${NAME:-}` + empty .env value gives exactly the code's defaults."""
    env: dict[str, str] = {}
    stack = cs.environment(_service(compose, "command-svc"))
    assert stack["BCRYPT_COST"] == "" and stack["COMMAND_MAX_ATTEMPTS"] == ""
    assert CommandSettings.from_env(stack) == CommandSettings.from_env(
        {
            **env,
            "COMMAND_GRPC_LISTEN": stack["COMMAND_GRPC_LISTEN"],
            "STORE_GRPC_TARGET": stack["STORE_GRPC_TARGET"],
            "KEYS_DIR": stack["KEYS_DIR"],
            # Set by the stack, not optional: the budgets live in its PostgreSQL.
            **{k: v for k, v in stack.items() if k.startswith(("POSTGRES_", "COMMAND_LIMITS"))},
        }
    )


def test_shared_names_and_defaults_agree_across_containers(compose: Mapping[str, Any]) -> None:
    """Database containers and services get the same credentials; defaults match the code."""
    clickhouse = cs.environment(_service(compose, "clickhouse"))
    postgres = cs.environment(_service(compose, "postgres"))
    store = cs.environment(_service(compose, "store-svc"))
    query = cs.environment(_service(compose, "query-svc"))
    for var in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DB"):
        assert clickhouse[var] == store[var], var
    assert store["CLICKHOUSE_HOST"] == "clickhouse:9000"
    assert store["EVENT_STORE_BACKEND"] == "clickhouse"
    assert query["QUERY_DB_BACKEND"] == "postgres"
    assert (query["POSTGRES_QUERY_HOST"], query["POSTGRES_QUERY_PORT"]) == ("postgres", "5432")
    assert postgres["POSTGRES_USER"] == query["POSTGRES_QUERY_USER"]
    assert postgres["POSTGRES_PASSWORD"] == query["POSTGRES_QUERY_PASSWORD"]
    assert postgres["POSTGRES_DB"] == query["POSTGRES_QUERY_DB"]
    # With .env's values empty the stack falls back to the code's own defaults.
    bare = cs.load_interpolated(dict(cs.TEST_SECRETS))
    code_store = StoreSettings.from_env({})
    code_query = QuerySettings.from_env({})
    bare_store = cs.environment(_service(bare, "store-svc"))
    bare_query = cs.environment(_service(bare, "query-svc"))
    assert bare_store["CLICKHOUSE_USER"] == code_store.clickhouse.user
    assert bare_store["CLICKHOUSE_DB"] == code_store.clickhouse.database
    assert bare_query["POSTGRES_QUERY_USER"] == code_query.postgres.user
    assert bare_query["POSTGRES_QUERY_DB"] == code_query.postgres.database
    assert bare_store["KAFKA_TOPIC"] == "user-events"
    assert bare_query["KAFKA_GROUP"] == "query-group"


def test_query_trusts_exactly_the_gateway(compose: Mapping[str, Any]) -> None:
    """Rate limits per client address need the gateway's x-forwarded-for, and only its."""
    gateway = _service(compose, "gateway")
    address = gateway["networks"]["backend"]["ipv4_address"]
    subnet = compose["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    query = cs.environment(_service(compose, "query-svc"))
    assert query["QUERY_TRUSTED_PROXIES"] == address


# ---------------------------------------------------------------- Kafka ---


def test_kafka_runs_kraft_combined_with_internal_and_external_listeners(
    compose: Mapping[str, Any],
) -> None:
    env = cs.environment(_service(compose, "kafka"))
    assert not any("ZOOKEEPER" in key for key in env)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = dict(
        (item.split("://")[0], item.split("://")[1]) for item in env["KAFKA_LISTENERS"].split(",")
    )
    advertised = dict(
        (item.split("://")[0], item.split("://")[1])
        for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    protocol_map = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    protocols = dict(item.split(":") for item in protocol_map.split(","))
    assert set(listeners) == set(protocols)
    controller_port = _port_of(listeners[controller])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:{controller_port}"
    assert controller not in advertised
    # The services use the internal listener; the host uses the published one.
    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[internal] == cs.environment(_service(compose, "store-svc"))["KAFKA_BROKER"]
    external = [name for name in advertised if name != internal]
    assert len(external) == 1
    published = [m.container_port for m in cs.port_mappings(_service(compose, "kafka"))]
    assert published == [_port_of(listeners[external[0]])] == [_port_of(advertised[external[0]])]
    # A single node: every replication factor and min ISR must be 1.
    for key, value in env.items():
        if key.endswith(("REPLICATION_FACTOR", "MIN_ISR", "MIN_INSYNC_REPLICAS")):
            assert value == "1", key
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_kafka_init_creates_the_topic_the_services_use(compose: Mapping[str, Any]) -> None:
    command = _service(compose, "kafka-init")["command"]
    assert "--if-not-exists" in command
    topic = command[command.index("--topic") + 1]
    assert topic == cs.environment(_service(compose, "query-svc"))["KAFKA_TOPIC"]
    assert int(command[command.index("--partitions") + 1]) >= 1
    assert command[command.index("--bootstrap-server") + 1] == "kafka:19092"


# -------------------------------------------------------------- volumes ---


def test_every_database_keeps_its_data_in_a_named_volume(compose: Mapping[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, service in cs.services(compose).items():
        for volume in service.get("volumes") or []:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":", 1)[0]
            if source.startswith((".", "/")):
                # Bind mounts: config files of this repo, read-only.
                assert (cs.REPO / source).resolve().is_file(), f"{name}: {source} missing"
                assert rest.endswith(":ro"), f"{name}: mount {source} read-only"
                continue
            assert source in declared, f"{name}: volume {source} is not declared"
            used.add(source)
            assert target.startswith("/"), f"{name}: {volume}"
    for name, path in DATABASE_MOUNTS.items():
        targets = {str(v).split(":")[1] for v in _service(compose, name).get("volumes") or []}
        assert path in targets, f"{name}: {path} is not on a named volume"
    assert declared == used, f"declared but unused: {sorted(declared - used)}"
    kafka_env = cs.environment(_service(compose, "kafka"))
    assert kafka_env["KAFKA_LOG_DIRS"] == DATABASE_MOUNTS["kafka"]


def test_clickhouse_overrides_are_well_formed() -> None:
    files = sorted((cs.REPO / "deploy" / "clickhouse").rglob("*.xml"))
    assert files
    for path in files:
        root = ET.parse(path).getroot()
        assert root.tag == "clickhouse", f"{path.name}: root element must be <clickhouse>"
