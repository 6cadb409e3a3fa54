"""The unit of work: one transaction per change of state, rolled back unless committed."""
from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import get_engine, write_bind


class UnitOfWork:
    """`with UnitOfWork() as uow: …; uow.commit()`: nothing is kept unless commit() is called."""

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def __enter__(self) -> "UnitOfWork":
        self.session = Session(bind=write_bind(self.engine), expire_on_commit=False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        """Make the unit's changes permanent."""
        self.session.commit()
