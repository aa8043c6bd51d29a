"""What the tests and the benchmarks share, so that neither imports the other (dev-only, not in the wheel).

* ``testkit.fakes``: loopback fakes of the upstreams (exchanges, CoinGecko, FRED/Yahoo, news,
  the Slack webhook), ``free_port``, private ``mariadbd`` and ``redis-server`` processes, a tiny
  transformers model;
* ``testkit.services``: the MariaDB and Redis servers a test session uses (found, started or
  named to install);
* ``testkit.webserver``: ``dagster-webserver`` as a subprocess with a GraphQL client;
* ``testkit.soak``: the soak of the live loop (``python testkit/soak.py``) that
  ``tests/integration/test_soak.py`` runs short.

``tests/`` and ``benchmarks/`` import from here, never from each other.
"""
