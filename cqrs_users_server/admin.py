"""The ``cqrs-admin`` command of the installed distribution: ``cqrs_admin.cli.main``,
imported once this package has put the shipped packages on ``sys.path``."""

from cqrs_admin.cli import main

__all__ = ["main"]
