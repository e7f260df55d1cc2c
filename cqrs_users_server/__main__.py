"""``python -m cqrs_users_server MODULE [ARGS...]``: runs one of the project's modules
as ``python -m MODULE`` would (``store_svc``, ``gateway``, ``query_svc.rebuild``,
...), with the packages shipped in this distribution importable by their names.
The container image's entrypoint. (Running it imports this package first, which
puts the shipped packages on ``sys.path``.)"""

from __future__ import annotations

import importlib.util
import runpy
import sys

_USAGE = "usage: python -m cqrs_users_server MODULE [ARGS...]  (e.g. gateway, store_svc)"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    module, rest = args[0], args[1:]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        print(f"cqrs_users_server: no module named {module!r}\n{_USAGE}", file=sys.stderr)
        return 2
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
