"""The "No critical errors in logs" check: a scan of the configured log file's tail, showing what matched."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from core.checklist.outcome import CheckContext, Outcome, failed, passed, warned
from core.config import mask_secrets_in_text

TAIL_BYTES = 2_000_000  # the newest 2 MB: a deployment's first hours, not the file's whole history
SHOWN_LINES = 20
# The logging format of every process here ("%(asctime)s …"): lines from before the deployment are skipped.
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})")


def _tail(path: Path) -> list[str]:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - TAIL_BYTES))
        data = fh.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > TAIL_BYTES else lines  # the first line of a cut tail is partial


def _after(line: str, since: datetime | None) -> bool:
    match = STAMP.match(line)
    if since is None or match is None:
        return True
    stamp = datetime.fromisoformat(match.group(1).replace(" ", "T")).replace(tzinfo=UTC)
    return stamp >= since.replace(microsecond=0)


def log_files(configured: str | None) -> list[Path]:
    """CHECKLIST_LOG_FILE (comma-separated), or else the processes' own logs that `make run` writes (var/*.log)."""
    if configured:
        return [Path(p.strip()) for p in configured.split(",") if p.strip()]
    return sorted(Path("var").glob("*.log"))


def check_logs(ctx: CheckContext) -> Outcome:
    """Lines matching CHECKLIST_LOG_PATTERN in the log files since the deployment (masked, the first 20)."""
    files = log_files(ctx.settings.checklist_log_file)
    if not files:
        return warned("critical log lines", None, "no log file configured (CHECKLIST_LOG_FILE) and no var/*.log")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return failed("critical log lines", None, f"{', '.join(missing)}: does not exist or is not a file")
    try:
        pattern = re.compile(ctx.settings.checklist_log_pattern, re.IGNORECASE)
    except re.error as exc:
        return failed("critical log lines", None, f"CHECKLIST_LOG_PATTERN is not a valid expression ({exc})")
    hits, scanned = [], 0
    for path in files:
        lines = _tail(path)
        scanned += len(lines)
        hits += [f"{path.name}: {mask_secrets_in_text(line)[:500]}" for line in lines
                 if pattern.search(line) and _after(line, ctx.deployed_at)]
    value = {"files": [str(f) for f in files], "lines_scanned": scanned, "matches": len(hits)}
    if hits:
        return failed("critical log lines", value, f"{len(hits)} line(s) match {ctx.settings.checklist_log_pattern!r}",
                      tuple(hits[:SHOWN_LINES]))
    return passed("critical log lines", value, f"no line matches {ctx.settings.checklist_log_pattern!r}")
