"""The agent API: the checklist's health, status and activation endpoints (FastAPI, built by create_app)."""
from core.api.app import create_app

__all__ = ["create_app"]
