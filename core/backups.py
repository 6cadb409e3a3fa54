"""The agent-table backup file: gzip JSON lines with a header, one line per row, and a checksum line at the end.

Writing goes to a `.partial` file that is renamed only when complete, so a full disk leaves nothing behind.
Reading checks everything before anything is restored and turns every kind of damage or hostility (truncated or
corrupt gzip, non-UTF-8, non-JSON, a wrong header, rows for tables a restore never writes, values that do not fit
their column, a checksum that does not match) into one sentence. The checksum finds damage; it is not a signature."""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Engine, Float, Integer, Numeric, String, inspect, select

from core.errors import UserInputError
from core.migrate import current_revision
from core.models import AGENT_TYPES, Base, agent_tables, utcnow
from core.models.base import UTCDateTime

BACKUP_FORMAT, BACKUP_VERSION = "agentops-agent-tables", 2


@dataclass(frozen=True)
class Backup:
    """A backup file checked whole (its rows are not kept: a 10M-conversation backup is tens of GB in memory);
    `rows()` streams them again, checked again, for the restore."""

    path: Path
    counts: dict[str, int]  # rows per table
    sha256: str  # of the file as stored, for the audit record
    header: dict[str, Any]
    settings: dict[str, Any]  # the backup's agent_settings row (id 1), {} when it has none
    oldest_conversation: datetime | None
    messages_without_month: bool  # written before revision 0011: messages lack their conversation's created_at
    content_sha256: str  # of the lines as read, trailer included: rows() reads the same file or refuses

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(table, row) in file order (parents first, as written); raises UserInputError if the file changed since
        it was checked."""
        digest = hashlib.sha256()
        for number, raw, last in _content(self.path):
            digest.update(raw)
            if number > 1 and not last:
                yield _check_row(self.path, number, _parse(self.path, number, raw))
            if last and digest.hexdigest() != self.content_sha256:
                raise UserInputError(f"{self.path} changed while it was being restored; nothing was restored.")

    def batches(self, size: int = 2000) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """rows() as (table, up to SIZE rows of it), for batched INSERTs."""
        table, batch = None, []
        for name, row in self.rows():
            if batch and (name != table or len(batch) >= size):
                yield table, batch  # type: ignore[misc]
                batch = []
            table = name
            batch.append(row)
        if batch:
            yield table, batch  # type: ignore[misc]

    @property
    def origin(self) -> str | None:
        """The database the backup was written from (`database_origin`); None in files written before it was kept."""
        origin = self.header.get("origin")
        return origin if isinstance(origin, str) else None


def database_origin(engine: Engine) -> str:
    """Which database this is, as a backup header keeps it: a restore elsewhere (staging's tables into production)
    must be asked for by name. PostgreSQL: the cluster's system identifier and the database; SQLite: the file."""
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        return f"sqlite {Path(engine.url.database or ':memory:').resolve()}"
    with engine.connect() as conn:
        name = conn.scalar(text("SELECT current_database()"))
        try:
            with conn.begin_nested():
                cluster = conn.scalar(text("SELECT system_identifier FROM pg_control_system()"))
        except Exception:  # noqa: BLE001 - a role without the function: the server's address names it instead
            cluster = conn.scalar(text("SELECT coalesce(host(inet_server_addr()), 'socket') || ':' || "
                                       "current_setting('port')"))
    return f"postgresql cluster {cluster}, database {name}"


def _encode(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def write_backup(engine: Engine, directory: Path) -> tuple[Path, dict[str, int]]:
    """Dump every agent table to a gzip JSON-lines file; returns its path and the rows per table.

    Raises OSError (a full disk, a directory that cannot be written) after removing the partial file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"agent-tables-{utcnow():%Y%m%dT%H%M%S%f}.jsonl.gz"
    partial = path.with_name(path.name + ".partial")
    try:
        counts = _dump(engine, partial)
        _sync(partial)  # on disk before the tables it holds are dropped: a power cut must not keep only the drop
        os.replace(partial, path)
        _sync(directory)  # the rename too
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path, counts


def _sync(path: Path) -> None:
    """fsync a file or a directory (the directory holds the rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(engine: Engine, target: Path) -> dict[str, int]:
    existing, counts, digest = set(inspect(engine).get_table_names()), {}, hashlib.sha256()
    header = {"format": BACKUP_FORMAT, "version": BACKUP_VERSION, "revision": current_revision(engine),
              "written_at": utcnow().isoformat(), "origin": database_origin(engine)}
    target.touch(mode=0o600)  # client messages inside: the owner's alone (they were world-readable, 0644)
    os.chmod(target, 0o600)  # whatever the umask
    with gzip.open(target, "wb") as out, engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # every table from one snapshot: the probe moves rollup rows between
            conn.execution_options(isolation_level="REPEATABLE READ")  # tables every cycle (SQLite: one already)

        def emit(item: dict[str, Any]) -> None:
            line = json.dumps(item).encode() + b"\n"
            digest.update(line)
            out.write(line)

        emit(header)
        for name in (t for t in agent_tables() if t in existing):
            table, counts[name] = Base.metadata.tables[name], 0
            for row in conn.execution_options(yield_per=5000).execute(select(table)).mappings():
                emit({"t": name, "r": {k: _encode(v) for k, v in row.items()}})
                counts[name] += 1
        out.write(json.dumps({"end": True, "rows": sum(counts.values()), "sha256": digest.hexdigest()}).encode() + b"\n")
    return counts


def read_backup(path: Path) -> Backup:
    """Every row of a backup file, checked and converted to column types; UserInputError says what is wrong."""
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise UserInputError(f"{str(path)[:80]}… cannot be read: {exc.strerror}.") from None
    if not is_file:
        raise UserInputError(f"No backup file at {path}.")
    try:
        return _read(path)
    except EOFError:
        problem = "the file is truncated (it ends before its gzip end marker)"
    except (gzip.BadGzipFile, zlib.error) as exc:
        problem = f"it is not an intact gzip file ({str(exc).rstrip('.') or type(exc).__name__})"
    except OSError as exc:
        problem = f"it cannot be read ({exc.strerror or type(exc).__name__})"
    raise UserInputError(f"{path} cannot be restored: {problem}.")


def _read(path: Path) -> Backup:
    counts: dict[str, int] = {}
    digest, header, settings, oldest, without_month = hashlib.sha256(), None, {}, None, False
    number, raw = 0, b""
    for number, raw, last in _content(path):
        if last:
            break
        digest.update(raw)
        item = _parse(path, number, raw)
        if header is None:
            header = _check_header(path, item)
            continue
        name, row = _check_row(path, number, item)
        counts[name] = counts.get(name, 0) + 1
        if name == "agent_settings" and row.get("id") == 1:
            settings = row
        elif name == "agent_conversations" and row.get("created_at") is not None:
            oldest = row["created_at"] if oldest is None else min(oldest, row["created_at"])
        elif name == "agent_messages" and row.get("conversation_created_at") is None:
            without_month = True
    if header is None:
        raise UserInputError(f"{path} cannot be restored: it does not start with the header of a backup written by "
                             "`db cleanup`." if number else f"{path} cannot be restored: it is empty.")
    _check_trailer(path, _parse(path, number, raw), digest.hexdigest(), sum(counts.values()))
    digest.update(raw)  # the trailer too: rows() compares the whole content
    return Backup(path, counts, _file_sha256(path), header, settings, oldest, without_month, digest.hexdigest())


def _content(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, is it the last) of the file, streamed: every line but the last is content, the last is
    the checksum."""
    pending, number = None, 0
    for number, raw in enumerate(_lines(path), start=1):
        if pending is not None:
            yield number - 1, pending, False
        pending = raw
    if pending is not None:
        yield number, pending, True


def _lines(path: Path) -> Iterator[bytes]:
    with gzip.open(path, "rb") as src:
        yield from src


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse(path: Path, number: int, raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserInputError(f"{path} cannot be restored: line {number} is not UTF-8 text.") from None
    except ValueError:
        raise UserInputError(f"{path} cannot be restored: line {number} is not JSON.") from None


def _check_header(path: Path, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("format") != BACKUP_FORMAT:
        raise UserInputError(f"{path} cannot be restored: it does not start with the header of a backup written by "
                             "`db cleanup`.")
    if item.get("version") != BACKUP_VERSION:
        raise UserInputError(f"{path} cannot be restored: it is backup format version {item.get('version', 1)!r}; "
                             f"this version reads version {BACKUP_VERSION} (with a checksum).")
    return item


def _check_trailer(path: Path, item: Any, digest: str, rows: int) -> None:
    if not isinstance(item, dict) or item.get("end") is not True or "sha256" not in item:
        raise UserInputError(f"{path} cannot be restored: it has no checksum line at the end (it was cut short or "
                             "written by hand).")
    if item["sha256"] != digest or item.get("rows") != rows:
        raise UserInputError(f"{path} cannot be restored: its checksum does not match its content (it was altered "
                             "or damaged).")


def _check_row(path: Path, number: int, item: Any) -> tuple[str, dict[str, Any]]:
    where = f"{path} cannot be restored: line {number}"
    if not isinstance(item, dict) or not isinstance(item.get("t"), str) or not isinstance(item.get("r"), dict):
        raise UserInputError(f"{where} is not a table row.")
    name = item["t"]
    if name not in agent_tables():
        raise UserInputError(f"{where} is for table {name[:40]!r}, which a restore never writes (only the agent "
                             "tables `db cleanup` removes).")
    decoders, row = _decoders(name), {}
    for key, value in item["r"].items():
        decode = decoders.get(key)
        if decode is None:
            raise UserInputError(f"{where} has column {key[:40]!r}, which table {name} does not have.")
        try:
            row[key] = None if value is None else decode(value)
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise UserInputError(f"{where} has a value for {name}.{key} that does not fit the column ({exc}).") from None
    if name == "agent_settings":
        _check_scope(where, row)
    return name, row


@functools.cache
def _decoders(table: str) -> dict[str, Callable[[Any], Any]]:
    """Column → its decoder, worked out once per table (a restore decodes millions of values: choosing the decoder
    by the column's type for each value took most of its time)."""
    return {c.name: _decoder_for(c.type) for c in Base.metadata.tables[table].c}


def _decoder_for(col_type: Any) -> Callable[[Any], Any]:
    """VALUE as the column's Python type; the same checks on both databases (SQLite would store anything). The
    column's type is tested once, here: the decoder it returns is called for every value."""
    if isinstance(col_type, JSON):
        return _as_written
    if isinstance(col_type, (UTCDateTime, DateTime)):
        return _decode_time
    if isinstance(col_type, Date):
        return lambda value: date.fromisoformat(_text(value))
    if isinstance(col_type, Boolean):
        return lambda value: _typed(value, bool)
    if isinstance(col_type, Integer):
        return _decode_int
    if isinstance(col_type, Numeric) and not isinstance(col_type, Float):
        return lambda value: Decimal(str(_typed(value, (str, int, float))))
    if isinstance(col_type, Float):
        return lambda value: float(_typed(value, (int, float)))
    if isinstance(col_type, String):
        return functools.partial(_decode_text, col_type.length)
    return _as_written


def _as_written(value: Any) -> Any:
    return value


def _decode_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_text(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)  # stored times are UTC


def _decode_int(value: Any) -> int:
    if type(value) is int:  # the common case, without _typed's checks (bool is not int here)
        return value
    return _typed(value, int)


def _decode_text(length: int | None, value: Any) -> str:
    text = _text(value)
    if length and len(text) > length:
        raise ValueError(f"longer than {length} characters")
    return text


def _typed(value: Any, kinds: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kinds is not bool:
        raise ValueError("expected a number, got true/false")
    if not isinstance(value, kinds):
        raise ValueError(f"got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _check_scope(where: str, row: dict[str, Any]) -> None:
    """The activation scope is read by every worker: only well-formed shop lists and known agent types."""
    def listed(key: str, fits: Any) -> bool:
        value = row.get(key)
        return value is None or (isinstance(value, list) and all(fits(v) for v in value))

    percent = row.get("shop_percent")
    ok = (listed("allowed_shops", lambda v: isinstance(v, int) and not isinstance(v, bool))
          and listed("allowed_agent_types", lambda v: v in AGENT_TYPES)
          and listed("disabled_agent_types", lambda v: v in AGENT_TYPES)
          and (percent is None or 0 <= percent <= 100))
    if not ok:
        raise UserInputError(f"{where} holds an activation scope that is not well formed.")
