"""`worker`, `conversations enqueue`, `api`, `metrics`: the runtime's commands."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Runtime commands are added as the runtime lands."""
