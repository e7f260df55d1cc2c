"""The eight scenarios of the benchmark, one module each (see bench/__main__.py)."""
