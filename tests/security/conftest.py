"""The API fixture (one user and token per role) is shared with the integration tests."""
from tests.integration.conftest import api  # noqa: F401 - a fixture
