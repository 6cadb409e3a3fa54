"""Issue 11: the CLI starts in ≤ 300 ms. `python -m core --help` and a real read command (`status`), wall and CPU
time per run; beside them, in the same run, the eager import of every command module that `core.cli.main` did before.

    python -m bench cli_startup [--reps 15]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import pct, table

EAGER = ("import core.cli.db_commands, core.cli.admin_commands, core.cli.control_commands, "
         "core.cli.runtime_commands, core.cli.metrics_commands, core.cli.api_commands, core.cli.rollback_commands; "
         "from core.cli import main; main({args!r})")


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) milliseconds of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def _measure(argv: list[str], env: dict[str, str], reps: int) -> tuple[float, float, float]:
    _run(argv, env)  # warm the page cache and the bytecode
    runs = [_run(argv, env) for _ in range(reps)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    return pct(walls, 0.5), pct(walls, 0.95), pct(cpus, 0.5)


def _hyperfine(command: str, env: dict[str, str]) -> str:
    """hyperfine's mean ± σ, when it is installed."""
    if not shutil.which("hyperfine"):
        return ""
    out = subprocess.run(["hyperfine", "-N", "--warmup", "2", "--export-json", "-", command], env=env,
                         capture_output=True, text=True, check=True).stdout
    import json

    r = json.loads(out)["results"][0]
    return f"; hyperfine {r['mean'] * 1000:.0f} ± {r['stddev'] * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    args, _ = ap.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/cli.db"}
        subprocess.run([sys.executable, "-m", "core", "db", "setup"], env=env, check=True, capture_output=True)
        rows = []
        for words in (["--help"], ["status"]):
            ours = _measure([sys.executable, "-m", "core", *words], env, args.reps)
            eager = _measure([sys.executable, "-c", EAGER.format(args=words)], env, args.reps)
            rows.append((f"python -m core {' '.join(words)}: wall median / p95, CPU median",
                         f"{ours[0]:.0f} / {ours[1]:.0f} ms, CPU {ours[2]:.0f} ms"
                         + _hyperfine(f"{sys.executable} -m core {' '.join(words)}", env),
                         "≤ 300 ms",
                         (f"every command module imported first (before): {eager[0]:.0f} / {eager[1]:.0f} ms, "
                          f"CPU {eager[2]:.0f} ms")))
        bare = _measure([sys.executable, "-c", "pass"], env, args.reps)
        rows.append(("bare interpreter start (floor)", f"{bare[0]:.0f} / {bare[1]:.0f} ms, CPU {bare[2]:.0f} ms",
                     "–", "–"))
    return table(f"CLI startup ({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f})", rows)
