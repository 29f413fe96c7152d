"""All configuration, from the environment (prefix `ERASER_`), in one place.

Profiles pick coherent defaults for where the service runs:
- `local`: one machine, no Docker: SQLite (WAL) and Celery's filesystem broker under `data_dir`.
- `compose`: Postgres and Redis from docker-compose.yml.
- `test`: like compose, against the services on this machine.
Any field set explicitly in the environment wins over the profile.
"""

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Profile(StrEnum):
    LOCAL = "local"
    COMPOSE = "compose"
    TEST = "test"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ERASER_", env_nested_delimiter="__")

    profile: Profile = Profile.LOCAL
    data_dir: Path = Path("./var")

    # Connections. Empty means "the profile's default" (see the properties below).
    database_url: str = ""
    broker_url: str = ""

    # The operator's model registry: name -> diffusers folder or hub id. Jobs name a model,
    # never a path. `demo` is always present (the built-in toy model) unless overridden.
    models: dict[str, str] = Field(default_factory=dict)
    # Which evaluator judges each model's jobs (the evaluation stage): name -> `judge`,
    # `nudenet` or `clip:/folder/of/a/clip/model`. `demo` is judged by `judge` unless set here;
    # a model with none gets `acceptance: not_evaluated`.
    model_evaluators: dict[str, str] = Field(default_factory=dict)

    # Messaging. One queue per GPU pool; tests use a unique name so runs never share messages.
    queue_name: str = "gpu"

    # Workers (B2). A lease is renewed by a heartbeat thread; a lease that lapses means the worker
    # is gone, and the reaper requeues the job (or fails it with `worker_lost` after max_attempts).
    lease_seconds: float = Field(60, gt=0)
    heartbeat_seconds: float = Field(10, gt=0)
    # How often a running job looks at its cancel flag (a one-row SELECT): the latency of a cancel.
    cancel_poll_seconds: float = Field(2, gt=0)
    max_attempts: int = Field(3, ge=1)
    reaper_interval_seconds: float = Field(15, gt=0)
    # A queued job older than this with no worker on it is re-enqueued (covers a lost message).
    requeue_stale_queued_seconds: float = Field(300, gt=0)
    checkpoint_every: int = Field(100, ge=0)  # UNet updates between checkpoints; 0 = none
    # Images the evaluation stage generates per call: its unit of progress, cancel and resume,
    # and what bounds its GPU memory (SD 1.x at 512 px: ~16 fit in 24 GB).
    evaluation_batch_size: int = Field(16, ge=1, le=256)
    progress_interval_seconds: float = Field(1.0, ge=0)  # throttle for progress writes to the DB
    worker_device: str = "auto"  # the engine's device: auto | cpu | cuda | cuda:N
    worker_ready_file: Path | None = None  # default: <data_dir>/worker.ready
    # Celery limits for jobs of hours (SD 1.x: 1.5-3 h). They must nest: soft < hard < the Redis
    # visibility timeout, else Redis hands a still-running job to a second worker.
    task_soft_time_limit: int = Field(6 * 3600, gt=0)
    task_time_limit: int = Field(6 * 3600 + 1800, gt=0)
    visibility_timeout: int = Field(7 * 3600, gt=0)

    # API limits (B1): every job body is checked against these, each violation a 422 naming the
    # field. They bound what one request can make a GPU worker (or the database) do.
    max_concepts: int = Field(8, ge=1)
    max_concept_chars: int = Field(200, ge=1)
    max_iterations: int = Field(10_000, ge=1)
    max_sample_prompts: int = Field(16, ge=0)
    max_prompt_chars: int = Field(300, ge=1)
    max_metadata_entries: int = Field(32, ge=0)
    max_metadata_chars: int = Field(500, ge=1)  # per key and per value
    max_request_bytes: int = Field(64 * 1024, ge=1024)
    page_size_default: int = Field(20, ge=1)
    page_size_max: int = Field(100, ge=1)
    # Rendered job views an API process keeps (core.jobs.rendering; ~2-4 KB each with its key);
    # 0 turns the cache off.
    rendered_jobs_cache: int = Field(4096, ge=0, le=1_000_000)
    # SSE: how often an open event stream polls the database, and how often it sends a keep-alive.
    events_poll_seconds: float = Field(0.5, gt=0)
    events_ping_seconds: float = Field(15, gt=0)
    # An Idempotency-Key still "in flight" after this long belongs to a request whose process
    # died between reserving the key and creating the job; it is released instead of being
    # answered 409 forever.
    idempotency_in_flight_timeout_seconds: float = Field(60, gt=0)
    # How long an Idempotency-Key is remembered: the reaper deletes records older than this, so
    # the table does not grow forever. A retry after that creates a new job. Longer than the
    # in-flight timeout (checked below), or a key could vanish while its request still runs.
    idempotency_ttl_seconds: float = Field(24 * 3600, gt=0)
    # The web console (/ui): how long a sign-in lasts before the key must be entered again.
    console_session_hours: float = Field(12, gt=0)

    @model_validator(mode="after")
    def _time_limits_nest(self) -> "Settings":
        if not self.task_soft_time_limit < self.task_time_limit < self.visibility_timeout:
            raise ValueError(
                "need task_soft_time_limit < task_time_limit < visibility_timeout, got "
                f"{self.task_soft_time_limit}, {self.task_time_limit}, {self.visibility_timeout}"
            )
        if not self.heartbeat_seconds < self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds")
        return self

    @model_validator(mode="after")
    def _idempotency_ttl_outlives_in_flight(self) -> "Settings":
        if not self.idempotency_ttl_seconds > self.idempotency_in_flight_timeout_seconds:
            raise ValueError(
                "need idempotency_ttl_seconds > idempotency_in_flight_timeout_seconds, got "
                f"{self.idempotency_ttl_seconds}, {self.idempotency_in_flight_timeout_seconds}"
            )
        return self

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.profile == Profile.LOCAL:
            return f"sqlite:///{self.resolved_data_dir / 'eraser.db'}"
        if self.profile == Profile.COMPOSE:
            return "postgresql+psycopg://eraser:eraser@postgres:5432/eraser"
        return "postgresql+psycopg://postgres@127.0.0.1:5432/test"

    @property
    def celery_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        if self.profile == Profile.LOCAL:
            return "filesystem://localhost/"  # a host, else kombu warns on every connection
        if self.profile == Profile.COMPOSE:
            return "redis://redis:6379/0"
        return "redis://127.0.0.1:6379/15"


def get_settings() -> Settings:
    """A fresh Settings read from the environment (callers cache it where they need to)."""
    return Settings()
