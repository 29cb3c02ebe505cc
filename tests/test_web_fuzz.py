"""Fuzz the API from its OpenAPI schema (schemathesis, in-process ASGI, bounded): no request gets a 5xx, and every
answer is one the schema documents — its status code, its content type and its body (ErrorBody for errors).

TMATH_FUZZ_EXAMPLES sets the examples per operation (default 400: about 60 s for the 9 operations on 2 cores);
benchmarks/soak_web.py --fuzz runs ≥ 10^4 requests in total.
"""

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from transformer_math.web.app import app  # noqa: E402

BASE = "http://localhost"  # schemathesis' ASGI client says Host: testserver, which the app rightly refuses
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("TMATH_FUZZ_EXAMPLES", "400"))
schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "localhost"})


def test_schema_documents_the_real_errors():
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for op in ops.values():
            for code, resp in op["responses"].items():
                if code != "200":
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
            assert "422" in op["responses"] or "requestBody" not in op, path


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_answers_conform_to_the_schema(case):
    response = case.call(base_url=BASE)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code < 500, response.text
