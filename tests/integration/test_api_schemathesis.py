"""Schemathesis against the gateway's own OpenAPI schema: no server errors, responses as documented.

Runs on a seeded SQLite warehouse and on MariaDB (where numeric reads take the binary-protocol path).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from resources.storage.warehouse import dispose_warehouse
from tests.conftest import mysql_database
from tests.integration.test_api_support import make_app, seed

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def sqlite_schema(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'warehouse.sqlite'}"
    seed(url)
    yield schemathesis.openapi.from_asgi("/openapi.json", make_app(url))
    dispose_warehouse(url)


@pytest.fixture(scope="module")
def mysql_schema():
    with mysql_database() as url:
        seed(url)
        yield schemathesis.openapi.from_asgi("/openapi.json", make_app(url))


def _exercise(schema) -> int:
    """Generate cases for every operation and validate each response; the number of operations."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @SETTINGS
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(checks=CHECKS)

        check()
    return len(operations)


def test_sqlite_api_conforms_to_its_schema(sqlite_schema):
    assert _exercise(sqlite_schema) >= 13


@pytest.mark.mysql
def test_mysql_api_conforms_to_its_schema(mysql_schema):
    assert _exercise(mysql_schema) >= 13
