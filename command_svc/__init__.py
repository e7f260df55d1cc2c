"""command_svc: the command side. Every change to a user account goes through here.

- :mod:`command_svc.app` - wiring, ``start(settings)``, ``serve()``, ``main()``
- :mod:`command_svc.settings` - ``CommandSettings.from_env``
- :mod:`command_svc.servicer` - the gRPC servicer (checks, tracing, idempotency)
- :mod:`command_svc.handlers` - load / decide / append / retry
- :mod:`command_svc.store_client` - the event store port and its gRPC client
- :mod:`command_svc.idempotency` - per-process idempotency-key cache
- :mod:`command_svc.bootstrap_admin` - registering ``ADMIN_EMAIL`` at start
- :mod:`command_svc.errors` - exceptions and their gRPC statuses
"""
