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

from pydantic import Field
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

    # Messaging. One queue per GPU pool; tests use a unique name so runs never share messages.
    queue_name: str = "gpu"

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.profile is Profile.LOCAL:
            return f"sqlite:///{self.resolved_data_dir / 'eraser.db'}"
        if self.profile is Profile.COMPOSE:
            return "postgresql+psycopg://eraser:eraser@postgres:5432/eraser"
        return "postgresql+psycopg://postgres@127.0.0.1:5432/test"

    @property
    def celery_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        if self.profile is Profile.LOCAL:
            return "filesystem://"
        if self.profile is Profile.COMPOSE:
            return "redis://redis:6379/0"
        return "redis://127.0.0.1:6379/15"


def get_settings() -> Settings:
    """A fresh Settings read from the environment (callers cache it where they need to)."""
    return Settings()
