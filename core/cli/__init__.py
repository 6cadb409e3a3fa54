"""`python -m core` (also `agentops`): everything the checklist runs by hand."""
from core.cli.main import main

__all__ = ["main"]
