"""The OpenAPI document says exactly what this deployment accepts.

Pydantic describes the shapes; what depends on the deployment (the operator's limits in Settings,
the registered models and, for word-list models, the words they know) and the text rules checked
by validators are written in here, each from the same constant or pattern the server checks with.
Generated per request of /openapi.json (a registry change shows at once), from a cached base.
"""

import copy
from typing import Any

from api.routes.artifacts import ARTIFACT_NAME_PATTERN
from core.jobs.concept_text import model_text
from core.jobs.pagination import CURSOR_PATTERN
from core.jobs.schemas import MAX_SEED, safe_text_pattern
from core.registry import list_models
from core.settings import Settings

Schema = dict[str, Any]


def describe_deployment(base: Schema, settings: Settings) -> Schema:
    schema = copy.deepcopy(base)
    components = schema["components"]["schemas"]
    _job_create(components["JobCreate"], settings)
    iterations = components["Hyperparameters"]["properties"]["iterations"]
    iterations["maximum"] = min(int(iterations["maximum"]), settings.max_iterations)
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _parameter(parameter, settings)
            # Every JSON body can be malformed, and that answer is a 400 problem.
            if "requestBody" in operation:
                operation["responses"].setdefault(
                    "400",
                    {
                        "description": "Bad Request (the body is not JSON, or repeats a key)",
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }
                        },
                    },
                )
    return schema


def _job_create(job: Schema, settings: Settings) -> None:
    visible = safe_text_pattern(visible=True)
    text = safe_text_pattern(visible=False)
    properties = job["properties"]
    properties["model"]["pattern"] = text
    properties["seed"]["maximum"] = MAX_SEED  # an int: the float pydantic writes rounds up to 2^63
    properties["seed"]["minimum"] = 0
    # The concepts' pattern depends on the model (below): one pattern per item keeps generators
    # of valid bodies (schemathesis) from having to intersect two.
    properties["concepts"].update(
        maxItems=settings.max_concepts,
        uniqueItems=True,
        items={"type": "string", "maxLength": settings.max_concept_chars},
    )
    properties["sample_prompts"].update(
        maxItems=settings.max_sample_prompts,
        items={"type": "string", "maxLength": settings.max_prompt_chars, "pattern": visible},
    )
    properties["metadata"].update(
        maxProperties=settings.max_metadata_entries,
        propertyNames={"maxLength": settings.max_metadata_chars, "pattern": text},
        additionalProperties={
            "type": "string",
            "maxLength": settings.max_metadata_chars,
            "pattern": text,
        },
    )
    # One branch per registered model: a word-list model (the demo) reads only its words.
    branches: list[Schema] = []
    for model in list_models(settings):
        branch: Schema = {"properties": {"model": {"const": model.name}}}
        rules = model_text(model)
        words = rules is not None and rules.known_words is not None
        items: Schema = {"pattern": visible}
        if rules is not None and words:
            items = {"pattern": rules.word_pattern, "maxLength": rules.max_word_list_chars}
        branch["properties"]["concepts"] = {"items": items}
        branches.append(branch)
    job["anyOf"] = branches
    properties["model"]["description"] = "A registered model name (GET /v1/models)."


def _parameter(parameter: Schema, settings: Settings) -> None:
    name = parameter.get("name")
    schema = parameter.get("schema", {})
    # An optional parameter is one that may be left out; "null" is not a value a query string or
    # header can carry (it would arrive as the four letters), so the document does not offer it.
    if "anyOf" in schema:
        schema["anyOf"] = [v for v in schema["anyOf"] if v.get("type") != "null"]
        if len(schema["anyOf"]) == 1:
            schema.update(schema.pop("anyOf")[0])
    variants = schema.get("anyOf", [schema])
    if name == "limit" and parameter.get("in") == "query":
        for variant in variants:
            if variant.get("type") == "integer":
                variant["maximum"] = settings.page_size_max
    elif name == "after" and parameter.get("in") == "query":
        for variant in variants:
            if variant.get("type") == "string":
                variant["pattern"] = CURSOR_PATTERN
    elif name in ("created_after", "created_before"):
        schema["format"] = "date-time"
    elif name == "name" and parameter.get("in") == "path":
        schema["pattern"] = ARTIFACT_NAME_PATTERN
    elif name == "idempotency-key":
        for variant in variants:
            if variant.get("type") == "string":
                variant["pattern"] = r"\S"  # not blank (a search: JSON Schema is unanchored)
