"""Property-based fuzzing of the served OpenAPI schema (schemathesis, bounded): no 5xx, conforming responses."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

EXAMPLES = 20  # per operation


def test_api_never_5xx_and_conforms(server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/docs.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/recommend", "/recommend_batch", "/similar_items"} <= paths, paths
    for op in operations:
        if op.method.upper() != "POST":
            continue

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            response = case.call(base_url=server, timeout=10)
            assert response.status_code < 500, (case.path, case.body, response.text[:500])
            if response.status_code == 200:
                case.validate_response(response, checks=[response_schema_conformance])

        try:
            check()
        except AssertionError as exc:  # name the operation
            pytest.fail(f"{op.method} {op.path}: {exc}")
