"""The Dockerfile checked without Docker: a light lint, its COPY sources, and a build of
exactly what it copies into a wheel that the four services import from.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Final

import pytest

from tests.unit.deploy import dockerfile_support as df
from tests.unit.deploy.compose_support import REPO

pytestmark = pytest.mark.unit

SERVICE_MODULES: Final = ("store_svc", "command_svc", "query_svc", "gateway")
# The project's packages the image holds (inside cqrs_users_server), besides gen/'s.
SHIPPED: Final = (*SERVICE_MODULES, "cqrs_admin", "domain", "service_kit", "pii")
GENERATED: Final = ("cqrs", "buf")
# What the image must be able to import (module -> why).
RUNTIME_IMPORTS: Final = (
    "store_svc.app",
    "command_svc.app",
    "query_svc.app",
    "query_svc.rebuild",  # the operator's read-model rebuild, run with `exec`
    "cqrs_admin.cli",  # cqrs-admin (its rebuild is run with `exec`)
    "gateway.app",
    "cqrs.eventstore.v1.event_store_pb2_grpc",
    "cqrs.command.v1.command_pb2_grpc",
    "cqrs.query.v1.query_pb2_grpc",
)
# Never in the context: secrets, local state, and what would only bloat it.
# ADD (remote URLs, auto-extraction), MAINTAINER (deprecated), ONBUILD ... are not wanted.
ALLOWED_INSTRUCTIONS: Final = frozenset(
    {"FROM", "RUN", "COPY", "ENV", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "EXPOSE", "LABEL", "ARG"}
)
MUST_IGNORE: Final = (".git", ".venv", ".env", "node_modules", "data", "tests", ".cache")


@pytest.fixture(scope="module")
def instructions() -> list[df.Instruction]:
    return df.parse()


@pytest.fixture(scope="module")
def final_stage(instructions: list[df.Instruction]) -> list[df.Instruction]:
    return df.stages(instructions)[-1]


def _one(stage: list[df.Instruction], keyword: str) -> df.Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def _env(stage: list[df.Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", instruction.args):
                values[name] = value
    return values


# ----------------------------------------------------------------- lint ---


def test_base_images_are_pinned_and_stages_named(instructions: list[df.Instruction]) -> None:
    names: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "FROM":
            continue
        _, words = instruction.flags_and_words()
        image = words[0]
        assert image.startswith("python:3.11-slim"), f"line {instruction.line}: {image}"
        assert ":" in image and not image.endswith(":latest"), f"line {instruction.line}"
        assert len(words) == 3 and words[1].upper() == "AS", "name every stage"
        names.append(words[2])
    assert len(names) == len(set(names)) >= 2


def test_copy_from_names_an_earlier_stage(instructions: list[df.Instruction]) -> None:
    seen: list[str] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            seen.append(instruction.flags_and_words()[1][-1])
        elif instruction.keyword == "COPY":
            flags, _ = instruction.flags_and_words()
            if "from" in flags:
                where = f"Dockerfile:{instruction.line}"
                assert flags["from"] in seen[:-1], f"{where}: --from={flags['from']}"


def test_runs_as_a_non_root_user(final_stage: list[df.Instruction]) -> None:
    user = _one(final_stage, "USER").args.split(":")[0]
    assert user not in ("root", "0", ""), "the final stage must drop root"
    index = final_stage.index(_one(final_stage, "USER"))
    assert not [i for i in final_stage[index:] if i.keyword == "RUN"], "RUN after USER"


def test_entrypoint_runs_a_module_and_the_default_is_a_service(
    final_stage: list[df.Instruction],
) -> None:
    assert _one(final_stage, "ENTRYPOINT").exec_form() == ["python", "-m", "cqrs_users_server"]
    cmd = _one(final_stage, "CMD").exec_form()
    assert cmd is not None and len(cmd) == 1 and cmd[0] in SERVICE_MODULES


def test_runtime_environment(final_stage: list[df.Instruction]) -> None:
    env = _env(final_stage)
    assert env.get("PYTHONUNBUFFERED") == "1"
    # The health checks in docker-compose.yml call `python`: the venv's must come first.
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    assert env.get("DATA_DIR", "").startswith("/"), "DATA_DIR must be absolute"


def test_light_lint(instructions: list[df.Instruction]) -> None:
    """hadolint-like rules that matter here (hadolint itself is not available)."""
    for instruction in instructions:
        where = f"Dockerfile:{instruction.line}"
        assert instruction.keyword in ALLOWED_INSTRUCTIONS, (
            f"{where}: unexpected {instruction.keyword} (ADD, MAINTAINER ... are not used)"
        )
        if instruction.keyword == "WORKDIR":
            assert instruction.args.startswith("/"), f"{where}: WORKDIR must be absolute"
        if instruction.keyword in ("ENTRYPOINT", "CMD"):
            assert instruction.exec_form() is not None, f"{where}: use the exec form"
        if instruction.keyword == "RUN":
            text = instruction.args
            assert "sudo " not in text, where
            assert not re.search(r"(^|&&|;)\s*cd\s", text), f"{where}: use WORKDIR, not cd"
            assert not re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", text), f"{where}: pipe to sh"
            if "pip install" in text:
                assert "--no-cache-dir" in text, f"{where}: pip install without --no-cache-dir"
                assert "[dev]" not in text and " -e " not in text, f"{where}: dev install"
            if "apt-get install" in text:
                assert "--no-install-recommends" in text and " -y" in text, where
                assert "rm -rf /var/lib/apt/lists" in text, where


def test_exposed_ports_are_the_services_ports(final_stage: list[df.Instruction]) -> None:
    exposed = {int(p) for i in final_stage if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == {9090, 9091, 9095, 8088, 8089, 8090}


def test_health_check_imports_are_runtime_dependencies() -> None:
    """docker-compose.yml's probes import grpc and grpc_health inside the image."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[=<>\[!~ ]", dep, maxsplit=1)[0] for dep in project["dependencies"]}
    assert {"grpcio", "grpcio-health-checking"} <= names


# -------------------------------------------------------- build context ---


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = df.ignore_patterns()
    for path in MUST_IGNORE:
        assert df.is_ignored(path, patterns), f".dockerignore lets {path} in"
    assert df.is_ignored("gen/cqrs/__pycache__/x.pyc", patterns)
    assert not df.is_ignored("gen/cqrs/descriptor_set.binpb", patterns)
    assert not df.is_ignored("pyproject.toml", patterns)


def test_copy_sources_exist_and_are_in_the_context(instructions: list[df.Instruction]) -> None:
    patterns = df.ignore_patterns()
    copies = [c for stage in df.stages(instructions) for c in df.context_copies(stage)]
    assert copies
    for copy in copies:
        for source in copy.sources:
            assert (REPO / source).exists(), f"Dockerfile:{copy.line}: {source} does not exist"
            assert not df.is_ignored(source.rstrip("/"), patterns), (
                f"Dockerfile:{copy.line}: {source} is excluded by .dockerignore"
            )


def test_every_service_package_is_copied(instructions: list[df.Instruction]) -> None:
    copied = {
        source.rstrip("/")
        for stage in df.stages(instructions)
        for copy in df.context_copies(stage)
        for source in copy.sources
    }
    assert {*SHIPPED, "cqrs_users_server", "gen", "pyproject.toml", "setup.py"} <= copied


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` (this interpreter) in ``cwd``, its output captured."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_what_is_copied_builds_and_runs(instructions: list[df.Instruction], tmp_path: Path) -> None:
    """The build stage's files make a wheel holding every service, its __main__,
    the generated code and the descriptor set, and the services import from it."""
    build_stage = df.stages(instructions)[0]
    context = tmp_path / "src"
    df.stage_build_context(build_stage, context)
    out = tmp_path / "dist"
    out.mkdir()
    built = _python(
        context,
        "-c",
        "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))",
        str(out),
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = out / built.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        scripts = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        # cqrs-admin goes through the package that puts the shipped packages on sys.path.
        assert "cqrs-admin = cqrs_users_server.admin:main" in archive.read(scripts).decode()
        site = tmp_path / "site"
        archive.extractall(site)
    for module in SERVICE_MODULES:
        assert f"cqrs_users_server/{module}/__main__.py" in names, f"{module} cannot be run"
    assert "cqrs_users_server/cqrs/descriptor_set.binpb" in names
    top_level = {name.split("/")[0] for name in names if not name.startswith("cqrs_users-")}
    assert top_level == {"cqrs_users_server"}, "one top-level package, no generic names"
    inside = {
        n.split("/")[1] for n in names if n.startswith("cqrs_users_server/") and n.count("/") > 1
    }
    assert inside == {*SHIPPED, *GENERATED}, (
        "the image must hold the services and what they import, not dev tools or tests"
    )

    # Every module of the project that the services load comes from the wheel
    # (not from this checkout, which the test's own venv can also import).
    probe = (
        "import importlib, sys\n"
        "site = sys.argv[1]\n"
        "sys.path.insert(0, site)\n"
        "import cqrs_users_server, cqrs_users_server.admin\n"
        "shipped = set(sys.argv[2].split(','))\n"
        "for name in sys.argv[3:]:\n"
        "    importlib.import_module(name)\n"
        "from service_kit import descriptors\n"
        "assert descriptors.descriptor_set().file\n"
        "for name, module in list(sys.modules.items()):\n"
        "    if name.split('.')[0] in shipped:\n"
        "        where = getattr(module, '__file__', None) or str(module.__path__)\n"
        "        assert site + '/cqrs_users_server/' in where, (name, where)\n"
    )
    ran = _python(
        tmp_path, "-I", "-c", probe, str(site), ",".join((*SHIPPED, *GENERATED)), *RUNTIME_IMPORTS
    )
    assert ran.returncode == 0, ran.stderr[-3000:]

    # The entrypoint runs any module of the project, as `python -m` would.
    entry = (
        "import runpy, sys\n"
        "sys.path.insert(0, sys.argv.pop(1))\n"
        "runpy.run_module('cqrs_users_server', run_name='__main__', alter_sys=True)\n"
    )
    helped = _python(tmp_path, "-I", "-c", entry, str(site), "query_svc.rebuild", "--help")
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "usage" in helped.stdout.lower(), helped.stdout
    unknown = _python(tmp_path, "-I", "-c", entry, str(site), "no_such_module")
    assert unknown.returncode == 2 and "no module named 'no_such_module'" in unknown.stderr
