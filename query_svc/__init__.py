"""query_svc package."""
