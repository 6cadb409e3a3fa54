"""Run benchmarks and print their tables: python -m bench [NAME ...] (default: all)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

ALL = ["seed_load", "worker_throughput", "health_queries", "rollups_rebuild", "api_status", "kill_switch",
       "worker_bound", "read_replica", "cli_startup", "console_browser", "checklist", "alerts", "review",
       "partitions", "restore"]


def main() -> int:
    names = [a for a in sys.argv[1:] if a in ALL] or ALL
    options = [a for a in sys.argv[1:] if a not in ALL]
    out = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        result = module.main(options)
        print(result, flush=True)
        out.append(result)
    Path("var").mkdir(exist_ok=True)
    Path("var/bench-latest.md").write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
