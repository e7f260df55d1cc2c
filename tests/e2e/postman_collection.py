"""Reading a Postman collection (v2.1) the way the tests need it, and running one with newman."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.body_log import BodyLog

COLLECTION = Path(__file__).parents[2] / "postman" / "CQRS-EventSourcing.postman_collection.json"
NEWMAN = Path(__file__).parents[2] / "node_modules" / ".bin" / "newman"
SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
# The seed's folders and how many requests each holds, in order.
FOLDERS = {
    "Auth Service": 4,
    "Query Service": 3,
    "Event Store": 5,
    "Time Travel": 4,
    "Snapshots": 3,
    "Complete User Journey": 7,
}
BASE_VARIABLES = {
    "auth_url": "http://localhost:8088",
    "query_url": "http://localhost:8089",
    "store_url": "http://localhost:8090",
}
_VARIABLE = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")


@dataclass(frozen=True, slots=True)
class PostmanRequest:
    """One request of the collection, with its folder."""

    folder: str
    name: str
    method: str
    base: str  # the base-URL variable, e.g. "auth_url"
    path: str  # with {{variables}} left in
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: str | None
    scripts: dict[str, str]  # "prerequest"/"test" -> source

    @property
    def label(self) -> str:
        return f"{self.folder}/{self.name}"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COLLECTION.read_text())
    return data


def variables_in(text: str) -> set[str]:
    return set(_VARIABLE.findall(text))


def substitute(text: str, values: dict[str, str]) -> str:
    """``{{name}}`` replaced by ``values[name]`` (KeyError for an unknown one)."""
    return _VARIABLE.sub(lambda m: values[m.group(1)], text)


def requests(collection: dict[str, Any]) -> list[PostmanRequest]:
    """Every request, in the order a run sends them."""
    out: list[PostmanRequest] = []
    for folder in collection["item"]:
        for item in folder["item"]:
            out.append(_request(folder["name"], item))
    return out


def _request(folder: str, item: dict[str, Any]) -> PostmanRequest:
    request = item["request"]
    url = request["url"]
    host = url["host"]
    assert len(host) == 1, f"{item['name']}: one base-URL variable expected, got {host}"
    base_match = _VARIABLE.fullmatch(host[0])
    assert base_match is not None, f"{item['name']}: host must be a {{{{*_url}}}} variable"
    path = "/" + "/".join(url["path"])
    query = tuple((q["key"], q["value"]) for q in url.get("query", []))
    raw = f"{host[0]}{path}"
    if query:
        raw += "?" + "&".join(f"{k}={v}" for k, v in query)
    assert url["raw"] == raw, f"{item['name']}: url.raw {url['raw']!r} != its parts {raw!r}"
    body = request.get("body")
    scripts = {
        event["listen"]: "\n".join(event["script"]["exec"]) for event in item.get("event", [])
    }
    return PostmanRequest(
        folder=folder,
        name=item["name"],
        method=request["method"],
        base=base_match.group(1),
        path=path,
        query=query,
        headers={h["key"]: h["value"] for h in request.get("header", [])},
        body=None if body is None else body["raw"],
        scripts=scripts,
    )


def run_newman(
    collection: Path,
    variables: Mapping[str, str],
    *,
    body_log: BodyLog,
    folder: Path,
    label: str,
) -> dict[str, Any]:
    """newman's JSON report of one run; every answer it received goes to ``body_log``.

    Fails the test if newman itself fails (a failed assertion of the
    collection's scripts, a request that got no answer); skips it when
    newman is not installed.
    """
    if not NEWMAN.exists():
        pytest.skip("newman is not installed: run `npm ci` (it is a devDependency in package.json)")
    report = folder / "report.json"
    cmd = [str(NEWMAN), "run", str(collection), "--reporters", "cli,json"]
    cmd += ["--reporter-json-export", str(report), "--color", "off", "--timeout-request", "30000"]
    for name, value in variables.items():
        cmd += ["--env-var", f"{name}={value}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    body_log.add(f"{label} output", done.stdout + done.stderr)
    data: dict[str, Any] = json.loads(report.read_text())
    for execution in data["run"]["executions"]:
        stream = execution.get("response", {}).get("stream", {})
        if stream.get("type") == "Buffer":
            body_log.add(f"{label} {execution['item']['name']}", bytes(stream["data"]))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return data
