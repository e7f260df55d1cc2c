"""One process running the whole system on embedded defaults (``make up``).

Wires the four services exactly as they run alone (each on its own port,
each with its own settings parsed from the same environment), so that what
``make up`` shows is what docker-compose deploys.
"""
