"""``python -m cqrs_admin`` = ``cqrs-admin``."""

from cqrs_admin.cli import main

main()
