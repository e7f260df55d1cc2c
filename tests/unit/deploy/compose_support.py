"""Reading docker-compose.yml and .env.example the way Docker Compose does, without Docker.

Invariants:
- :func:`interpolate` follows the Compose Specification's interpolation rules
  (``$$`` escape, ``${V}``, ``$V``, ``${V:-d}``/``${V-d}``, ``${V:?e}``/``${V?e}``,
  ``${V:+r}``/``${V+r}``); a required variable that is missing raises
  :class:`MissingVariable`, as ``docker compose`` refuses to start.
- :class:`RecordingEnv` records every key a settings parser looks up, so the
  variables a service reads come from running its own ``from_env``, not from a
  list kept here by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

REPO: Final = Path(__file__).resolve().parents[3]
COMPOSE_FILE: Final = REPO / "docker-compose.yml"
ENV_EXAMPLE: Final = REPO / ".env.example"
SCHEMA_FILE: Final = REPO / "deploy" / "compose-spec.json"
# Digest of compose-spec.json as shipped by check-jsonschema 0.39.0 (see deploy/README.md).
SCHEMA_SHA256: Final = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)"
    rf"|\{{(?P<braced>{_NAME})(?:(?P<op>:?[-?+])(?P<arg>[^}}]*))?\}}"
    rf"|(?P<bare>{_NAME}))"
)


class MissingVariable(Exception):
    """A ``${NAME:?message}`` (or ``?``) variable is unset (or empty)."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every variable replaced as Compose would."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        value = env.get(name)
        empty_counts = op.startswith(":")
        missing = value is None or (empty_counts and value == "")
        kind = op[-1:] if op else ""
        if kind == "-":
            return arg if missing else str(value)
        if kind == "?":
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        if kind == "+":
            return "" if missing else arg
        return value or ""

    return _TOKEN.sub(replace, text)


def variables_in(text: str) -> dict[str, str]:
    """Every variable ``text`` interpolates, with its operator ("" for plain, ":?" ...)."""
    return {
        m["braced"] or m["bare"]: m["op"] or "" for m in _TOKEN.finditer(text) if not m["escaped"]
    }


def walk_strings(node: Any) -> Iterator[str]:
    """Every string value in a loaded YAML document (keys excluded, as Compose does)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """A copy of a loaded document with every string value interpolated."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    return node


def load_raw() -> dict[str, Any]:
    """docker-compose.yml as YAML (merge keys resolved), before interpolation."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


def read_dotenv(path: Path) -> dict[str, str]:
    """A Compose ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        key, value = key.strip(), value.strip()
        assert re.fullmatch(_NAME, key), f"{path.name}:{number}: bad name {key!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        assert key not in values, f"{path.name}:{number}: {key} is listed twice"
        values[key] = value
    return values


# Test values for the secrets .env.example leaves empty on purpose.
TEST_SECRETS: Final[Mapping[str, str]] = {
    "CLICKHOUSE_PASSWORD": "clickhouse-test-password",
    "POSTGRES_QUERY_PASSWORD": "postgres-test-password",
    "PII_MASTER_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
}


def example_env() -> dict[str, str]:
    """.env.example with the empty secrets filled in: what an operator's .env looks like."""
    env = read_dotenv(ENV_EXAMPLE)
    for name, value in TEST_SECRETS.items():
        if not env.get(name):
            env[name] = value
    return env


def load_interpolated(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml after interpolation with ``env`` (default: :func:`example_env`)."""
    tree = interpolate_tree(load_raw(), example_env() if env is None else env)
    assert isinstance(tree, dict)
    return tree


def services(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = document.get("services")
    assert isinstance(found, dict), "no services"
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as name → string (mapping or ``K=V`` list form)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [str(item).partition("=") for item in raw]
        return {key: value for key, _, value in pairs}
    assert isinstance(raw, dict)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One published port: ``host_ip:host_port -> container_port``."""

    host_ip: str
    host_port: int
    container_port: int


def port_mappings(service: Mapping[str, Any]) -> list[PortMapping]:
    """The service's ``ports`` (short and long syntax, single ports only)."""
    out: list[PortMapping] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append(
                PortMapping(
                    str(entry.get("host_ip", "")),
                    int(entry["published"]),
                    int(entry["target"]),
                )
            )
            continue
        text = str(entry).split("/", 1)[0]
        parts = text.rsplit(":", 2)
        if len(parts) == 3:
            host_ip, host, container = parts
        elif len(parts) == 2:
            host_ip, (host, container) = "", parts
        else:
            raise AssertionError(f"port {entry!r} publishes no fixed host port")
        out.append(PortMapping(host_ip, int(host), int(container)))
    return out


class RecordingEnv(Mapping[str, str]):
    """A mapping that remembers every key looked up (``[]``, ``get``, ``in``)."""

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = dict(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("settings must look variables up by name, not iterate the env")

    def __len__(self) -> int:
        return len(self._data)


# env_str(env, "NAME", ...), env.get("NAME"), env["NAME"], os.environ.get("NAME") ...
_ENV_READ = re.compile(
    r"(?:\benv_(?:str|int|float|choice)\(\s*\w+\s*,\s*"
    r"|\b(?:env|environ|os\.environ)\.get\(\s*"
    r"|\b(?:env|environ|os\.environ)\[\s*)"
    r"[\"']([A-Z][A-Z0-9_]+)[\"']"
)


def env_names_in_source(*packages: str) -> set[str]:
    """Variable names the code of ``packages`` (folders under the repo) reads, by regex."""
    names: set[str] = set()
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            names.update(_ENV_READ.findall(path.read_text(encoding="utf-8")))
    return names
