"""Units of work: one transaction per command or task, follow-up work released only after commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from curation.db.engine import READ_ONLY, create_db_engine

_AFTER_COMMIT = "curation_after_commit"


class Database:
    """An engine and its session factory. Create one per process (after fork, for worker pools)."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any error; then run what was deferred with `after_commit`.

        Deferred callbacks run only after a successful commit, so a worker that receives a
        follow-up job always finds the rows that job refers to.
        """
        session = self._sessions()
        try:
            with session.begin():
                yield session
            callbacks = session.info.pop(_AFTER_COMMIT, [])
        finally:
            session.close()
        for callback in callbacks:
            callback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reading only (on SQLite it does not take the write lock)."""
        # Leaving the block closes the session: its transaction is rolled back without expiring
        # the objects already loaded (a rollback() would expire them).
        with self._read_sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run `callback` once the session's transaction has committed; drop it if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)
