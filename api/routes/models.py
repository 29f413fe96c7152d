"""/v1/models: the base models jobs may name."""

from fastapi import APIRouter

from api.dependencies import Context, Principal
from api.problems import problems
from core.jobs.schemas import ModelList, ModelView
from core.registry import list_models

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList, responses=problems(401), summary="Registered models")
def registered_models(principal: Principal, context: Context) -> ModelList:
    # Sources (paths, hub ids) are the operator's business; clients only need the names.
    return ModelList(
        items=[
            ModelView(
                name=model.name,
                kind=model.kind.value,
                available=model.available,
                evaluator=model.evaluator_name,
            )
            for model in list_models(context.settings)
        ]
    )
