"""``cqrs-admin``: the operator's tool (status, rebuild, backup, restore, migrate, copy-store).

It reads the same variables as the services (``DATA_DIR``,
``EVENT_STORE_BACKEND``, ``CLICKHOUSE_*``, ``QUERY_DB_BACKEND``,
``POSTGRES_QUERY_*``, ``KAFKA_TOPIC``), so it is pointed at a deployment by
running it in that deployment's environment. It talks to the stores
directly, except ``rebuild``, which asks a running query_svc.
"""
