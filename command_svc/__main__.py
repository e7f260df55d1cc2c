"""``python -m command_svc``: run the command service."""

from command_svc.app import main

main()
