"""store_svc package."""
