"""The Celery task the API enqueues by name (`core.queue.RUN_JOB_TASK`).

Thin on purpose: it builds this process's database engine and artifact store, then hands the job
to `worker.job_runner.JobRunner`. With `worker_max_tasks_per_child=1` each task runs in a fresh
child process, so the engine (and its connection pool) is created after the fork, never shared.
"""

from core.artifacts import get_store
from core.db.session import engine_from_settings, make_session_factory
from core.queue import RUN_JOB_TASK
from core.settings import get_settings
from worker.celery_app import app
from worker.job_runner import JobRunner


@app.task(name=RUN_JOB_TASK, ignore_result=True)
def run_job(job_id: str) -> str:
    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        runner = JobRunner(settings, make_session_factory(engine), get_store(settings))
        return runner.run(job_id).value
    finally:
        engine.dispose()


__all__ = ["run_job"]
