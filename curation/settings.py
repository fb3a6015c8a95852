"""Process-wide settings, read once from the environment (prefix ``CURATION_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything that differs between a laptop, a CI machine and a cluster.

    Training hyperparameters are deliberately not here: they belong to a training run's config,
    which is stored with the run so that it can be reproduced from the database alone.
    """

    model_config = SettingsConfigDict(env_prefix="CURATION_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("reasoning-curation", appauthor=False)),
        description="Where the embedded SQLite database, prepared models and exports live.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty means a SQLite file in data_dir; "
        "use postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://host:6379/0). Unset: tasks run in-process (embedded mode).",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=120_000,
        ge=0,
        description="How long a SQLite writer waits for the write lock before giving up. Writers take the "
        "lock at BEGIN (BEGIN IMMEDIATE), so this bounds queueing behind other writers, not deadlocks.",
    )
    echo_sql: bool = Field(default=False, description="Log every SQL statement (debugging).")
    task_time_limit: int = Field(
        default=3600,
        ge=10,
        description="Hard limit in seconds for one Celery task (a batch), at least 10; the soft limit "
        "(see soft_time_limit) comes before it.",
    )
    visibility_timeout: int | None = Field(
        default=None,
        ge=10,
        description="Seconds before Redis redelivers an unacknowledged task; must exceed the task time limit "
        "(default: twice it).",
    )
    training_time_limit: int = Field(
        default=7 * 24 * 3600,
        ge=120,
        description="Hard limit in seconds for one training task (`curation.train`), which outlives the "
        "task time limit; its soft limit is a minute before.",
    )
    lease_seconds: float = Field(
        default=60.0,
        ge=2.0,
        description="How long a generation task's claim on its batch, or a training run's claim on itself, "
        "lasts without renewal (renewed every quarter of it while the task works); a duplicate delivery "
        "waits this long at most after a crash.",
    )
    generation_threads: int = Field(
        default=1,
        ge=0,
        description="torch threads while a model generates on a CPU (teachers, students, decoding); 0: torch's "
        "default (one per core). One is the default because a team of threads stalls against any other busy "
        "process (workers/teachers/cpu_threads.py); training keeps every core.",
    )
    sandbox_uid: int = Field(
        default=1_500_000_000,
        ge=1,
        description="Where the worker runs as root: slot N of a sandbox runs its programs as uid and gid "
        "sandbox_uid + N, ids that must own nothing on the machine (never 0). Ignored for a worker that is "
        "not root (its programs keep its uid).",
    )

    sql_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL `curation sql` and a snapshot spec's `where` connect with on PostgreSQL: "
        "a role that can only read, on the same primary database (see docs/sql.md). Unset: the "
        "`curation_reader` role that the migrations create, or the main URL's role when it is not a "
        "superuser and either can only read or the reader cannot log in.",
    )

    sql_timeout_s: float = Field(
        default=300.0,
        ge=0,
        description="`curation sql` (and a snapshot spec's `where`, on PostgreSQL) cancels a statement that "
        "runs longer than this (0: never): on PostgreSQL through statement_timeout, on SQLite between steps "
        "of the statement.",
    )

    @property
    def soft_time_limit(self) -> int:
        """When a task is told to stop (it stores what it holds, then fails): a tenth of the hard
        limit before it, at least 1 s and at most a minute, so it is positive for every limit
        allowed (3600 s gives 3540 s, 60 s gives 54 s, 10 s gives 9 s)."""
        return self.task_time_limit - min(60, max(1, self.task_time_limit // 10))

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'curation.db'}"
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
