"""The platform's Dagster code: assets, checks, jobs and schedules (the code location's package).

Two Dagster warnings name APIs used here on purpose, and every process that loads the definitions
(the code server, each run) would print them once per asset: ``backfill_policy`` is in beta, and
``build_time_partition_freshness_checks`` is superseded by freshness policies, which cannot say
that a window is late. They are silenced by their exact message before any module of the package
defines anything; every other warning still shows.
"""

import warnings

warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset` is currently in beta")
warnings.filterwarnings("ignore", message="Function `build_time_partition_freshness_checks` is superseded")
