"""Which packages the server wheel holds, and which folder each comes from.

The wheel has one top-level package, ``cqrs_users_server``, with the project's
packages inside it (why, and how they are imported: cqrs_users_server/__init__.py).
Everything else about the distribution is in pyproject.toml; only this list is
computed, because setuptools' package discovery cannot put what it finds under
a prefix, and a hand-kept list of every subpackage would drift.
"""

from __future__ import annotations

from setuptools import find_packages, setup

PREFIX = "cqrs_users_server"
# The folder each group of packages is found in -> the packages that ship.
# (bootstrap/ and bench/ are the single-process dev runner and the benchmarks,
# tests/ the tests: none of them is part of a deployment.)
SHIPPED: dict[str, tuple[str, ...]] = {
    ".": (
        "domain",
        "service_kit",
        "pii",
        "store_svc",
        "command_svc",
        "query_svc",
        "gateway",
        "cqrs_admin",
    ),
    "gen": ("cqrs", "buf"),
}


def _layout() -> tuple[list[str], dict[str, str]]:
    packages = [PREFIX]
    package_dir = {PREFIX: PREFIX}
    for where, roots in SHIPPED.items():
        found = find_packages(where=where, include=[*roots, *(f"{r}.*" for r in roots)])
        packages += [f"{PREFIX}.{name}" for name in found]
        for root in roots:
            package_dir[f"{PREFIX}.{root}"] = root if where == "." else f"{where}/{root}"
    return packages, package_dir


_packages, _package_dir = _layout()
setup(packages=_packages, package_dir=_package_dir)
