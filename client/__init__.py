"""A Python client of the eraser API (`pip install eraser[client]`): no torch, no server code.

from client import EraserClient
with EraserClient("http://127.0.0.1:8000", api_key) as eraser:
    job = eraser.create_job({"model": "demo", "concepts": ["ring"]})
    job = eraser.wait(job)
    eraser.download(job, "out/")
"""

from client.api import EraserClient
from client.errors import (
    ConnectionFailed,
    EraserError,
    FieldProblem,
    IntegrityError,
    ProblemError,
    WaitTimeout,
)
from client.models import Artifact, Event, Job, JobStatus, Progress, RegisteredModel

__all__ = [
    "Artifact",
    "ConnectionFailed",
    "EraserClient",
    "EraserError",
    "Event",
    "FieldProblem",
    "IntegrityError",
    "Job",
    "JobStatus",
    "ProblemError",
    "Progress",
    "RegisteredModel",
    "WaitTimeout",
]
