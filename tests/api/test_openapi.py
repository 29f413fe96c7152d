"""The OpenAPI document tells clients which problems each call can return."""

import httpx

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}


def test_every_v1_operation_declares_its_problems_as_problem_json(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    operations = {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    }
    assert len(operations) == 11  # jobs (4), events, artifacts (2), models, admin keys (3)

    for (method, path), operation in operations.items():
        responses = operation["responses"]
        assert "401" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/problem+json": PROBLEM}

    create = operations[("POST", "/v1/jobs")]["responses"]
    assert {"400", "409", "413", "415", "422"} <= set(create)
    download = operations[("GET", "/v1/jobs/{job_id}/artifacts/{name}")]["responses"]
    assert {"206", "404", "416", "422"} <= set(download)
    assert "304" in operations[("GET", "/v1/jobs/{job_id}")]["responses"]
    assert "409" in operations[("POST", "/v1/jobs/{job_id}/cancel")]["responses"]
    assert "403" in operations[("POST", "/v1/admin/keys")]["responses"]
    assert set(spec["components"]["schemas"]["Problem"]["properties"]) >= {
        "type",
        "title",
        "status",
        "detail",
        "errors",
    }
