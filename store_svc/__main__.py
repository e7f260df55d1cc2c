"""``python -m store_svc``: run the event store service alone."""

from store_svc.app import main

main()
