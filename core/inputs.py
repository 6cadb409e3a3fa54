"""Numbers people type (ids, minutes, thresholds), checked once before they reach a query or a timestamp, so a typo
is one sentence rather than an overflow deep in the database driver."""
from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import UserInputError

MAX_INT = 2**31 - 1  # PostgreSQL's integer: shop ids, user ids, alert ids
MAX_BIGINT = 2**63 - 1  # PostgreSQL's bigint and SQLite's integer: conversation ids
EARLIEST_YEAR, LATEST_YEAR = 2000, 2999  # dates people type (filters, --since)


def whole_number(value: Any, name: str, *, low: int = 1, high: int = MAX_INT) -> int:
    """VALUE as an int from LOW to HIGH; anything else is a UserInputError naming NAME."""
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        number = None
    if number is None or isinstance(value, bool) or not low <= number <= high:
        raise UserInputError(f"{name} must be a whole number from {low:,} to {high:,} (got {value!r}).")
    return number


def shop_ids(values: Iterable[Any], name: str = "A shop id") -> list[int]:
    """Each of VALUES as a shop id (1 to MAX_INT)."""
    return [whole_number(v, name) for v in values]


def known_shops(session: Session, values: Iterable[Any]) -> tuple[int, ...]:
    """VALUES as the ids of shops that exist, sorted, each once; a bad or unknown one is a UserInputError."""
    from core.models import Shop

    wanted = set(shop_ids(values))
    found = set(session.scalars(select(Shop.id).where(Shop.id.in_(wanted)))) if wanted else set()
    if wanted - found:
        raise UserInputError(f"No shop with id {', '.join(map(str, sorted(wanted - found)))}.")
    return tuple(sorted(wanted))


def finite_number(value: Any, name: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    """VALUE as a finite float from LOW to HIGH ('nan', 'inf', 1e400 and words are refused)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not low <= number <= high:
        bounds = "" if math.isinf(low) and math.isinf(high) else f" from {_shown(low)} to {_shown(high)}"
        raise UserInputError(f"{name} must be a number{bounds} (got {value!r}).")
    return number


def short_text(value: str, name: str, *, most: int) -> str:
    """VALUE stripped, at most MOST characters (the column's width: longer text was a database error)."""
    text = (value or "").strip()
    if len(text) > most:
        raise UserInputError(f"{name} can have at most {most} characters (got {len(text):,}).")
    return text


MAX_REASON = 500  # the API's limit too: a reason is a sentence for the audit trail, not a document


def required_reason(value: str, missing: str) -> str:
    """VALUE stripped, refused with the sentence MISSING when blank and with a length sentence when over MAX_REASON
    characters (the CLI stored 100,000 characters in the audit trail and printed them back in `status`)."""
    text = short_text(value, "A reason", most=MAX_REASON)
    if not text:
        raise UserInputError(missing)
    return text


def in_time_range(value: datetime, name: str) -> datetime:
    """VALUE when its year is between EARLIEST_YEAR and LATEST_YEAR: windows and partitions are computed from it,
    and a date near year 1 or 9999 overflowed that arithmetic."""
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise UserInputError(f"{name} must be between {EARLIEST_YEAR} and {LATEST_YEAR} (got {value:%Y-%m-%d}).")
    return value


def _shown(x: float) -> str:
    return f"{x:g}" if math.isinf(x) or x != int(x) else f"{int(x):,}"


def is_row_id(value: int) -> bool:
    """True when VALUE can be a row id at all (a larger one would overflow the driver, so it names no row)."""
    return 1 <= value <= MAX_BIGINT
