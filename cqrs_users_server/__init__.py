"""The server distribution's one top-level package.

The project's packages (``store_svc``, ``command_svc``, ``query_svc``,
``gateway``, ``cqrs_admin``, ``domain``, ``service_kit``, ``pii`` and the
generated ``cqrs`` and ``buf``) import each other by those names: they are the
repository's top-level folders. A wheel that put them at the top level of
``site-packages`` would claim generic names (``domain``, ``gateway``, ...) in
whatever environment it is installed into. The wheel built from this project
ships them *inside* this package instead (pyproject.toml, ``package-dir``),
and importing this package puts the folder that holds them first on
``sys.path``, for the server's own processes only: ``python -m
cqrs_users_server gateway`` (the image's entrypoint) and ``cqrs-admin``.

Invariant: after ``import cqrs_users_server``, ``import gateway`` (and every
other package named above) resolves to the copy that was shipped with it: the
wheel's own folder when installed, the checkout (and its ``gen/``) in a
source tree.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["package_roots"]

_HERE = Path(__file__).resolve().parent


def package_roots() -> list[str]:
    """The folders that hold the project's packages, first one first."""
    if (_HERE / "service_kit").is_dir():  # installed: the packages are inside
        return [str(_HERE)]
    checkout = _HERE.parent  # a source tree: beside this folder, generated code in gen/
    return [str(checkout), str(checkout / "gen")]


for _root in reversed(package_roots()):
    if _root in sys.path:
        sys.path.remove(_root)
    sys.path.insert(0, _root)
