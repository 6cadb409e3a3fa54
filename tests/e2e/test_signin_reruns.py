"""Issue 11: the first page after sign-in is one run of the form and one of the signed-in page. Writing the session
cookie must not ask the server for more runs (a bidirectional cookie component posted back twice, so the whole page
ran three or four times). Counted from the messages the browser sends; the cookie is still kept."""
from __future__ import annotations

from playwright.sync_api import Page, WebSocket
from streamlit.proto.BackMsg_pb2 import BackMsg

from core.seed.runner import demo_password
from tests.e2e.conftest import no_error_box, open_page, settle


def test_signing_in_asks_for_one_run_and_keeps_the_cookie(console: str, page: Page) -> None:
    requests: list[str] = []

    def watch(ws: WebSocket) -> None:
        def sent(payload: bytes | str) -> None:
            if isinstance(payload, bytes):
                msg = BackMsg.FromString(payload)
                # The live panels' timer reruns only their fragment: not a run of the page script.
                if msg.WhichOneof("type") != "rerun_script" or not msg.rerun_script.fragment_id:
                    requests.append(msg.WhichOneof("type"))
        ws.on("framesent", sent)

    page.on("websocket", watch)
    page.goto(console)
    page.get_by_label("User name").fill("po")
    page.get_by_role("textbox", name="Password").fill(demo_password("po"))
    settle(page)
    before = requests.count("rerun_script")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Last updated").wait_for(timeout=30_000)
    settle(page, quiet_seconds=3)
    assert requests.count("rerun_script") - before == 1, requests
    no_error_box(page)
    assert any(c["name"] == "agentops_session" for c in page.context.cookies())
    open_page(page, console, "", "Agent health")  # a new session resumes from the cookie: no sign-in form
    assert page.get_by_role("button", name="Sign in").count() == 0


LOADED_CHART_CODE = "() => performance.getEntriesByType('resource').some(e => /PlotlyChart\\.[^/]*\\.js$/.test(e.name))"


def test_the_sign_in_page_loads_the_chart_code_off_screen(console: str, page: Page) -> None:
    """The first page after sign-in waited ~0.8 s for plotly's code (4.7 MB); the form loads it while the user
    types, and the user sees nothing of it: no chart, no table on screen."""
    page.goto(console)
    page.get_by_role("button", name="Sign in").wait_for()
    page.wait_for_function(LOADED_CHART_CODE, timeout=30_000)
    viewport = page.viewport_size
    for testid in ("stPlotlyChart", "stDataFrame"):
        element = page.get_by_test_id(testid)
        element.wait_for(state="attached")
        box = element.bounding_box()
        assert box is None or box["x"] + box["width"] <= 0 or box["x"] >= viewport["width"], (testid, box)
    # Nor can a keyboard reach them: Tab from the form never lands on something off screen.
    page.get_by_label("User name").focus()
    for _ in range(8):
        page.keyboard.press("Tab")
        x = page.evaluate("() => document.activeElement.getBoundingClientRect().x")
        assert x >= 0, page.evaluate("() => document.activeElement.outerHTML.slice(0, 200)")
    no_error_box(page)
