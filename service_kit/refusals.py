"""The one place where every limit's refusal is reported (login budgets, request
rates, registration, connection caps).

:func:`refused` is called once per refused request, with the name of the limit
that refused it (``login.pair``, ``register.address``, ...) and the seconds
the caller is told to wait. Observers (metrics) register with
:func:`add_hook`; a hook that raises is logged and never changes the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

__all__ = ["Hook", "add_hook", "refused", "remove_hook"]

log = logging.getLogger(__name__)

Hook = Callable[[str, int], None]
_HOOKS: Final[list[Hook]] = []


def add_hook(hook: Hook) -> None:
    """Calls ``hook(limit, retry_after)`` on every refusal from now on."""
    _HOOKS.append(hook)


def remove_hook(hook: Hook) -> None:
    """Stops calling ``hook`` (no error if it was not registered)."""
    if hook in _HOOKS:
        _HOOKS.remove(hook)


def refused(limit: str, retry_after: int) -> int:
    """Reports a refusal by ``limit``; returns ``retry_after`` for the caller's answer."""
    log.info("refused by limit %s; retry after %d s", limit, retry_after)
    for hook in list(_HOOKS):
        try:
            hook(limit, retry_after)
        except Exception:
            log.exception("refusal hook %r failed", hook)
    return retry_after
