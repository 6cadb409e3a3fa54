"""The conversation list's filters: parsed once (CLI flags, page widgets, URL parameters) and turned into SQL."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, false, literal_column, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.config import get_settings
from core.errors import UserInputError
from core.inputs import finite_number, in_time_range, whole_number
from core.models import AGENT_TYPES, CHANNELS, REVIEW_STATES, Conversation, Message, ReviewState
from core.models.conversations import FTS_EXPRESSION
from core.models.review import FTS_TABLE

STATUSES = ("pending", "in_progress", "waiting_response", "completed", "failed", "opted_out")


@dataclass(frozen=True)
class ConversationFilter:
    status: str | None = None
    agent_type: str | None = None
    shop_id: int | None = None
    channel: str | None = None
    provider: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    review_state: str | None = None
    rating: int | None = None
    flag: str | None = None
    has_error: bool | None = None
    judge_min: float | None = None
    judge_max: float | None = None
    search: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filters that are set, as plain values (audit evidence, URLs)."""
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """The filters that are set, in words ('shop 3, judge score ≥ 4, from 2026-12-01 10:00 UTC'); '' if none."""
        words = {"shop_id": "shop {}", "judge_min": "judge score ≥ {:g}", "judge_max": "judge score ≤ {:g}",
                 "since": "from {:%Y-%m-%d %H:%M:%S} UTC", "until": "until {:%Y-%m-%d %H:%M:%S} UTC",
                 "has_error": "with an error", "search": "messages matching {!r}", "rating": "rating {}",
                 "review_state": "review {}", "agent_type": "{}", "status": "{}", "channel": "{}",
                 "provider": "provider {}", "flag": "flag {}"}
        return ", ".join(words[k].format(v) for k, v in asdict(self).items() if v is not None)


def parse_time(value: Any, name: str) -> datetime | None:
    """ISO-8601 (a date, or a time with or without zone; no zone means UTC) → aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise UserInputError(f"{name} must be an ISO-8601 time such as 2026-11-25T09:00:00Z (got {value!r}).") from None
    # Checked before the zone is applied: a year-1 time with a zone east of UTC cannot be converted at all.
    in_time_range(parsed, name)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in allowed:
        raise UserInputError(f"Unknown {name} {value!r}; known: {', '.join(allowed)}.")
    return str(value)


def _number(value: Any, name: str, kind: type) -> Any:
    if value in (None, ""):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be a number (got {value!r}).") from None


def _optional(value: Any, parse: Callable[[Any], Any]) -> Any:
    return None if value in (None, "") else parse(value)


def _flag(value: Any) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("0", "false", "no"):
        return False
    raise UserInputError(f"has_error must be true or false (got {value!r}).")


def parse_filter(raw: dict[str, Any]) -> ConversationFilter:
    """A ConversationFilter from loose values (strings from a URL or flags); bad input is one sentence."""
    settings = get_settings()
    known = {f.name for f in fields(ConversationFilter)}
    unknown = sorted({k for k, v in raw.items() if v not in (None, "")} - known)
    if unknown:
        raise UserInputError(f"Unknown filter {', '.join(unknown)}.")
    rating = _number(raw.get("rating"), "rating", int)
    if rating is not None and not settings.review_rating_min <= rating <= settings.review_rating_max:
        raise UserInputError(f"rating must be between {settings.review_rating_min} and {settings.review_rating_max}.")
    search = (raw.get("search") or "").strip() or None
    scale = {"low": settings.review_rating_min, "high": settings.review_rating_max}  # the judge scores on it too
    f = ConversationFilter(
        status=_choice(raw.get("status"), STATUSES, "status"),
        agent_type=_choice(raw.get("agent_type"), AGENT_TYPES, "agent type"),
        shop_id=_optional(raw.get("shop_id"), lambda v: whole_number(v, "The shop id")),
        channel=_choice(raw.get("channel"), CHANNELS, "channel"),
        provider=(raw.get("provider") or None), since=parse_time(raw.get("since"), "since"),
        until=parse_time(raw.get("until"), "until"),
        review_state=_choice(raw.get("review_state"), REVIEW_STATES, "review state"), rating=rating,
        flag=_choice(raw.get("flag"), settings.review_flag_names(), "flag"), has_error=_flag(raw.get("has_error")),
        judge_min=_optional(raw.get("judge_min"), lambda v: finite_number(v, "Judge score at least", **scale)),
        judge_max=_optional(raw.get("judge_max"), lambda v: finite_number(v, "Judge score at most", **scale)),
        search=search[:200] if search else None)
    if f.since and f.until and f.since >= f.until:
        raise UserInputError("since must be before until.")
    if f.judge_min is not None and f.judge_max is not None and f.judge_min > f.judge_max:
        raise UserInputError("Judge score at least cannot be above judge score at most: no conversation would match.")
    return f


def conversation_conditions(f: ConversationFilter, session: Session) -> list[ColumnElement]:
    """WHERE conditions on Conversation (c) and its outer-joined ReviewState (r) for F."""
    c, r = Conversation, ReviewState
    plain = [(f.status, c.status), (f.agent_type, c.agent_type), (f.shop_id, c.shop_id), (f.channel, c.channel),
             (f.provider, c.provider), (f.rating, r.rating)]
    conds: list[ColumnElement] = [col == value for value, col in plain if value is not None]
    if f.since:
        conds.append(c.created_at >= f.since)
    if f.until:
        conds.append(c.created_at < f.until)
    if f.review_state == "unreviewed":
        conds.append(or_(r.state.is_(None), r.state == "unreviewed"))
    elif f.review_state:
        conds.append(r.state == f.review_state)
    if f.flag:
        conds.append(r.flags.like(f"%,{f.flag},%"))
    if f.has_error is not None:
        conds.append(c.error.is_not(None) if f.has_error else c.error.is_(None))
    if f.judge_min is not None:
        conds.append(r.judge_rating >= f.judge_min)
    if f.judge_max is not None:
        conds.append(r.judge_rating <= f.judge_max)
    if f.search:
        conds.append(search_condition(session, f.search))
    return conds


# Up to this many matching messages are read from the full-text index first and looked up by id; a term
# matching more is common enough that walking the newest conversations and checking each finds a page sooner.
# (One plan for both misleads the planner: it cannot know how rare a word is.)
SEARCH_BY_ID = 2000


# A word in at least this share of messages (PostgreSQL's statistics of the full-text index) is common.
COMMON_SHARE = 0.002


def _common_on_postgres(session: Session, term: str) -> bool:
    """True when every word of TERM is among the index's most common words (ANALYZE keeps them current)."""
    words = [w.lower() for w in term.split() if w.strip()]
    freq = dict(session.execute(text(
        "SELECT e, f FROM pg_stats, unnest(most_common_elems::text::text[], most_common_elem_freqs) AS x(e, f) "
        "WHERE tablename = 'ix_agent_messages_fts' AND e = ANY(:words)"), {"words": words}).all())
    return bool(words) and all(freq.get(w, 0.0) >= COMMON_SHARE for w in words)


def search_condition(session: Session, term: str) -> ColumnElement:
    """Conversations with a message matching TERM (every word), the way that is fast for how rare TERM is."""
    dialect = session.get_bind().dialect.name
    common = dialect == "postgresql" and _common_on_postgres(session, term)
    rows = [] if common else session.scalars(matching_conversations(term, dialect).limit(SEARCH_BY_ID + 1)).all()
    if not common and len(rows) <= SEARCH_BY_ID:  # every matching message was read: look its conversations up by id
        return Conversation.id.in_(sorted(set(rows))) if rows else false()
    m = Message
    match = _pg_match(term) if dialect == "postgresql" else m.id.in_(_fts5_rowids(term))
    # OFFSET 0 keeps the check a per-conversation look at its own messages: pulled up into a join, the planner
    # would gather every match first (it underestimates common words) instead of walking the newest conversations.
    return select(literal_column("1")).where(m.conversation_id == Conversation.id, match).offset(0).exists()


def _pg_match(term: str) -> ColumnElement:
    return literal_column(FTS_EXPRESSION).op("@@")(text("plainto_tsquery('simple', :fts_term)")
                                                   .bindparams(fts_term=term))


def _fts5_rowids(term: str) -> Any:
    q = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts_term").bindparams(fts_term=fts5_query(term))
    return q.columns(literal_column("rowid"))


def fts5_query(term: str) -> str:
    """TERM as an FTS5 query of quoted words (all must occur): no operator of the user's reaches FTS5."""
    words = [w for w in term.split() if w.strip('"')]
    return " ".join('"' + w.replace('"', '""') + '"' for w in words) or '""'


def matching_conversations(term: str, dialect: str) -> Any:
    """A subquery of conversation ids with a message matching TERM (all words), through the full-text index."""
    m = Message
    if dialect == "postgresql":
        return select(m.conversation_id).where(_pg_match(term))
    return select(m.conversation_id).where(m.id.in_(_fts5_rowids(term)))


def search_like(term: str) -> ColumnElement:
    """The naive way (benchmarks only): a LIKE over every message."""
    return exists().where(and_(Message.conversation_id == Conversation.id, Message.content.ilike(f"%{term}%")))
