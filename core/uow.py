"""The unit of work: one transaction per change of state, rolled back unless committed."""
from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import get_engine, write_bind
from core.errors import Conflict, first_line


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
        if isinstance(exc, IntegrityError):
            # Services check uniqueness and references before they write; what the database still refuses was
            # changed by someone else between that check and the commit (two admins adding the same name).
            raise Conflict(f"The database refused the change, and nothing was saved ({first_line(exc)}): someone "
                           "else may have changed the same thing at the same moment; reload and try again.") from exc

    def commit(self) -> None:
        """Make the unit's changes permanent."""
        self.session.commit()
