"""Command-line tools: ``python -m cli.doctor``, ``python -m cli.backup``, ``python -m cli.retention``."""
