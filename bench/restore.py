"""`db restore` of a cleanup backup on PostgreSQL: wall time and peak memory of the restore process, beside what
holding every row of the same backup in memory costs (what the restore did before it streamed the file).

    python -m bench restore [--conversations 100000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import scratch_postgres, table

def _core(url: str, backups: Path, *args: str) -> tuple[float, int, str]:
    """Run `python -m core ARGS` as the only child of a fresh interpreter, so the kernel's peak RSS of its children
    (ru_maxrss, in KB on Linux) is that command's own; (seconds, peak MB, stdout)."""
    script = (f"import subprocess, resource, sys, time; t = time.perf_counter(); "
              f"p = subprocess.run([sys.executable, '-m', 'core', *{list(args)!r}], capture_output=True, text=True); "
              f"print(time.perf_counter() - t); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
              f"print(p.returncode); print(p.stdout); print(p.stderr, file=sys.stderr)")
    env = {**os.environ, "DATABASE_URL": url, "BACKUP_DIR": str(backups)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    seconds, peak_kb, code, *rest = out.stdout.split("\n")
    if int(code) != 0:
        raise SystemExit(f"python -m core {' '.join(args)} failed: {out.stderr.strip()[-400:]}")
    return float(seconds), int(peak_kb) // 1024, "\n".join(rest)


def _held_peak_mb(url: str, path: Path) -> tuple[float, int]:
    """Seconds and peak MB of reading every row of PATH into a list (the restore before it streamed)."""
    code = f"from pathlib import Path; from core.backups import read_backup; rows = list(read_backup(Path({str(path)!r})).rows())"
    script = (f"import subprocess, resource, sys, time; t = time.perf_counter(); "
              f"subprocess.run([sys.executable, '-c', {code!r}], check=True); "
              f"print(time.perf_counter() - t); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "DATABASE_URL": url})
    seconds, peak_kb = out.stdout.split()
    return float(seconds), int(peak_kb) // 1024


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=100_000)
    args, _ = ap.parse_known_args(argv)
    with scratch_postgres() as url, tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        backups = Path(tmp)
        _core(url, backups, "seed", "--test-data", "load", "--conversations", str(args.conversations))
        _core(url, backups, "db", "cleanup", "--yes")
        [path] = list(backups.glob("*.jsonl.gz"))
        seconds, peak, _ = _core(url, backups, "db", "restore", str(path))
        held_s, held_peak = _held_peak_mb(url, path)
        size = path.stat().st_size / 2**20
    title = (f"db restore (PostgreSQL, a backup of {args.conversations:,} conversations, {size:.0f} MB gzip; "
             f"2 cores, load average {os.getloadavg()[0]:.1f})")
    return table(title, [
        ("restore: wall time", f"{seconds:.1f} s", "–", "–"),
        ("restore: peak memory of the process", f"{peak} MB", "flat in the backup's size",
         f"every row of the backup held in memory (the restore before): {held_peak} MB, {held_s:.1f} s to read"),
    ])


if __name__ == "__main__":
    print(main(sys.argv[1:]))
