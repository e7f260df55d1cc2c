"""``python -m gateway``: run the REST gateway alone."""

from gateway.app import main

main()
