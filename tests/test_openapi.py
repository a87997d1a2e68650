from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(database_url=None)).openapi()
    return schema


def test_openapi_file_matches_app(document: dict[str, Any]) -> None:
    committed = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert committed == document, "openapi.yaml is out of date; run `make openapi` and commit it"


# PagerDuty's client libraries read its own 400 body, so these respond in PagerDuty's shape.
VENDOR_ERROR_SHAPES = {("post", "/v2/enqueue", "400"), ("post", "/v2/change/enqueue", "400")}


def test_error_responses_are_problem_json(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if (method, path, status) in VENDOR_ERROR_SHAPES:
                    assert set(response["content"]) == {"application/json"}
                elif status[0] in "45":
                    media_types = set(response.get("content", {}))
                    where = f"{method.upper()} {path} {status}"
                    assert media_types == {"application/problem+json"}, where


def test_no_default_validation_schema(document: dict[str, Any]) -> None:
    # FastAPI documents 422 as HTTPValidationError unless a route declares its own 422;
    # Tocsin returns validation errors as problem+json, so the default must not appear.
    assert "HTTPValidationError" not in document["components"]["schemas"]
