"""The API gateway: a thin, fast, read-only FastAPI over the warehouse's finished tables.

Run it with ``python -m api`` (loopback only unless API keys are configured) or
``uvicorn api.app:app``; read it from Python with :class:`api.client.CryptoDataClient`.
It imports only ``resources.storage`` (the table contract, the feature specs, the warehouse, the lake),
``resources.config.settings`` and (the client) the standard-library ``Retry-After`` parser
``resources.sources.retry_after``: no Dagster.
"""
