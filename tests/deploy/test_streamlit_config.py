"""The console's production settings in .streamlit/config.toml (the image copies the file; image-smoke checks they
are in force there and that another origin gets no Access-Control-Allow-Origin)."""
from __future__ import annotations

import tomllib

from tests.deploy.support import ROOT

CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_xsrf_protection_on_and_cross_origin_access_off() -> None:
    assert CONFIG["server"]["enableXsrfProtection"] is True
    # Streamlit's enableCORS is its CORS *protection*: false would send `Access-Control-Allow-Origin: *`.
    assert CONFIG["server"]["enableCORS"] is True
    assert "corsAllowedOrigins" not in CONFIG["server"]


def test_headless_without_usage_statistics_or_tracebacks() -> None:
    assert CONFIG["server"]["headless"] is True
    assert CONFIG["browser"]["gatherUsageStats"] is False
    assert CONFIG["client"]["showErrorDetails"] == "none"


def test_the_reverse_proxy_path_is_documented_where_it_is_set() -> None:
    text = (ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8")
    assert "STREAMLIT_SERVER_BASE_URL_PATH" in text and "baseUrlPath" in text


def test_the_running_indicator_stays_visible() -> None:
    # toolbarMode "minimal" hides Streamlit's running indicator (seen in Chromium: no stStatusWidget while a page
    # ran), so a click looked ignored for the seconds a sign-in or a slow page took. "viewer" keeps it, without
    # developer options.
    assert CONFIG["client"]["toolbarMode"] == "viewer"


def test_no_full_garbage_collection_after_every_run() -> None:
    """Streamlit's post-run gc.collect(2) held the GIL for 100-150 ms after each click, and the websocket waited."""
    assert CONFIG["runner"]["postScriptGC"] is False
