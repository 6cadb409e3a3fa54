"""Fixtures shared with the integration and console tests: the API (a user and token per role) and the console."""
from tests.dashboard.conftest import console_db  # noqa: F401 - a fixture
from tests.integration.conftest import api  # noqa: F401 - a fixture
