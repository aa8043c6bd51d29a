"""Code below Dagster: configuration, sources, storage and the sentiment model (see the subpackages)."""
