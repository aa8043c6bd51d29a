"""The settings this code location runs with: read once, when its modules load.

Dagster loads the definitions in every process that needs them (the code server, each run
worker, ``dagster asset materialize``), so each reads its environment once, here; the
partitions and ``definitions.py`` (resources, checks, schedules) take their values from
:data:`LOADED`, and nothing below reads the environment at call time.
"""

from resources.config.settings import load_settings

LOADED = load_settings()
