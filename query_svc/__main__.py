"""``python -m query_svc``: run the query service alone."""

from query_svc.app import main

main()
