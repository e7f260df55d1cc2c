"""The admin tool's refusals: one line for the operator, exit status 1."""

from __future__ import annotations

__all__ = ["AdminError"]


class AdminError(Exception):
    """An operation refused or failed for a reason the operator can act on."""
