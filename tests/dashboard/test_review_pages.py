"""The Conversations and Review queues pages through the real entrypoint (AppTest), as each role sees them."""
from __future__ import annotations

import json

from sqlalchemy import Engine, func, select

from core.auth import Actor, Role, system_actor
from core.db import read_session
from core.models import AuditRecord, Client, Conversation, ReviewQueueItem, ReviewRecord
from core.services import review_queues
from core.uow import UnitOfWork
from tests.dashboard.conftest import body_text, open_app, shown, sign_in, submit


def _open(at, path: str, **params: str):
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(f"../pages/{path}").run()
    assert not at.exception
    return at


def _forms(at) -> list[str]:
    """The ids of the forms on the page (each has its submit button)."""
    return [b.form_id for b in at.button if b.form_id]


def _agent_type(engine: Engine, conversation_id: int) -> str:
    with read_session(engine) as s:
        return s.get(Conversation, conversation_id).agent_type


def _first(engine: Engine, **where: object) -> tuple[int, Client]:
    with read_session(engine) as s:
        conv = s.scalars(select(Conversation).filter_by(**where).order_by(Conversation.id)).first()
        return conv.id, s.get(Client, conv.client_id)


def test_conversations_list_filters_from_a_link_and_opens_a_deep_link(console_db: Engine) -> None:
    conv_id, client = _first(console_db, status="completed", shop_id=1)
    at = _open(sign_in(open_app(), "support"), "conversations.py", status="failed", conversation=str(conv_id))
    assert "Conversations" in [t.value for t in at.title]
    table = at.dataframe[0].value
    assert len(table) > 0 and set(table["status"]) == {"failed"}
    assert f"Conversation {conv_id}" in [h.value for h in at.subheader]
    assert f"{client.first_name} {client.last_name}" in body_text(at)  # support sees their shops' clients
    at.run()  # a reload keeps the conversation open
    assert not at.exception and f"Conversation {conv_id}" in [h.value for h in at.subheader]


def test_product_owner_sees_masked_names_and_a_reveal_is_audited(console_db: Engine) -> None:
    conv_id, client = _first(console_db, status="completed", shop_id=2)
    at = _open(sign_in(open_app(), "po"), "conversations.py", conversation=str(conv_id))
    text = body_text(at)
    assert f"{client.first_name} {client.last_name}" not in text and client.phone not in text
    assert f"{client.first_name[0]}. {client.last_name[0]}." in text
    assert all(f"{client.first_name} {client.last_name}" not in str(v) for v in at.dataframe[0].value["client"])
    form = next(f for f in _forms(at) if f.startswith(f"reveal_{conv_id}"))
    next(w for w in at.text_input if w.form_id == form).input("client phoned about a double booking")
    submit(at, form)
    assert not at.exception and f"{client.first_name} {client.last_name}" in body_text(at)
    with read_session(console_db) as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "client.reveal")).one()
    assert rec.actor == "po" and rec.reason == "client phoned about a double booking"


def test_support_reviews_the_next_item_of_a_queue(console_db: Engine) -> None:
    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "support"), "review.py")
    at.selectbox(key="review_queue").select("opt-outs")
    submit(at, "next_item")
    assert not at.exception
    item = at.session_state["review_item"]
    assert f"Conversation {item['conversation_id']}" in [h.value for h in at.subheader]
    form = next(f for f in _forms(at) if f.startswith(f"review_{item['conversation_id']}"))
    next(r for r in at.radio if r.form_id == form).set_value(2)
    next(m for m in at.multiselect if m.form_id == form).set_value(["tone", "opt_out_ignored"])
    submit(at, form)
    assert not at.exception and not at.error
    with read_session(console_db) as s:
        rec = s.scalars(select(ReviewRecord)).one()
        done = s.get(ReviewQueueItem, item["item_id"]).done_at
    assert (rec.conversation_id, rec.rating, rec.flags, rec.reviewer) == (
        item["conversation_id"], 2, ["tone", "opt_out_ignored"], "support") and done is not None
    submit(at, "next_item")
    assert not at.exception and at.session_state["review_item"]["item_id"] != item["item_id"]
    # One day of reviews: the quality charts' time axis names days, not milliseconds around midnight.
    axes = [json.loads(c.proto.spec)["layout"]["xaxis"] for c in at.get("plotly_chart")]
    assert len(axes) >= 2 and all((x.get("tickformat"), x.get("dtick")) == ("%b %d", 86_400_000) for x in axes)


def test_skip_then_next_item_brings_another_item(console_db: Engine) -> None:
    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "engineer"), "review.py")
    at.selectbox(key="review_queue").select("opt-outs")
    submit(at, "next_item")
    first = at.session_state["review_item"]
    assert any(f"Reviewing item {first['item_id']} from the “opt-outs” queue" in c for c in shown(at.caption))
    submit(at, "skip_item")
    assert [t.value for t in at.toast] == [f"Item {first['item_id']} went back to the end of the “opt-outs” queue."]
    submit(at, "next_item")
    assert not at.exception and at.session_state["review_item"]["item_id"] != first["item_id"]


def test_a_reload_mid_review_shows_the_held_item_again(console_db: Engine) -> None:
    """After a reload the Queues table said held 1, but the page showed no item until Next item was clicked."""
    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(console_db))
    engineer = Actor(username="engineer", role=Role.ENGINEER, source="console")  # the demo sign-in below
    held = review_queues.next_item(actor=engineer, queue="opt-outs", uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "engineer"), "review.py")  # a new browser session: nothing in it yet
    assert not at.exception
    assert f"Conversation {held['conversation_id']}" in [h.value for h in at.subheader]
    # The picker shows that item's queue ("opt-outs" is not the first): it showed the first, and Next item after
    # the review then came from there.
    assert at.selectbox(key="review_queue").value == "opt-outs" != at.selectbox(key="review_queue").options[0]


def test_a_review_without_a_rating_keeps_the_error_on_screen(console_db: Engine) -> None:
    conv_id, _ = _first(console_db, status="completed", shop_id=1)
    at = _open(sign_in(open_app(), "engineer"), "conversations.py", conversation=str(conv_id))
    form = next(f for f in _forms(at) if f.startswith(f"review_{conv_id}"))
    submit(at, form)
    assert not at.exception and "Choose a rating first." in [e.value for e in at.error]


def test_engineer_disables_an_agent_type_from_a_flagged_pattern(console_db: Engine) -> None:
    from core.services import review as rs

    conv_id, _ = _first(console_db, status="completed", shop_id=1)
    rs.submit_review(actor=system_actor("test"), conversation_id=conv_id, rating=1, flags=["hallucination"],
                     uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "engineer"), "review.py")
    assert "Flagged patterns" in [h.value for h in at.subheader]
    form = next(f for f in _forms(at) if f.startswith("disable_pattern"))
    next(w for w in at.selectbox if w.form_id == form).set_value((_agent_type(console_db, conv_id), "hallucination"))
    next(w for w in at.text_input if w.form_id == form).input("inventing prices")
    submit(at, form)
    assert not at.exception
    with read_session(console_db) as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "agent_type.disable")).one()
    assert "flag=hallucination" in rec.reason and "inventing prices" in rec.reason


def test_product_owner_cannot_review_or_disable(console_db: Engine) -> None:
    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "po"), "review.py")
    forms = _forms(at)
    assert not any(f.startswith(("next_item", "fill_queues", "disable_pattern")) for f in forms)
    assert "Queues" in [h.value for h in at.subheader]


def test_another_shops_link_is_refused_and_audited(console_db: Engine) -> None:
    from core.services import users

    users.add_user(actor=system_actor("test"), username="sue", password="long enough pw", role="support", shops=[1],
                   uow=UnitOfWork(console_db))
    other, _ = _first(console_db, status="completed", shop_id=2)
    at = _open(sign_in(open_app(), "sue", "long enough pw"), "conversations.py", shop="2", conversation=str(other))
    errors = [e.value for e in at.error]
    assert sum("This attempt has been recorded." in e for e in errors) == 2, errors
    with read_session(console_db) as s:
        refused = s.execute(select(AuditRecord.action, AuditRecord.target).where(
            AuditRecord.outcome == "refused", AuditRecord.actor == "sue")).all()
    assert sorted(refused) == [("conversation.read", "shop 2"), ("transcript.read", f"conversation {other}")]
    # The table shows what its caption says: the list without filters (it was empty beside "no filters applied").
    assert any("no filters applied" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) > 0 and set(at.dataframe[0].value["shop_id"].astype(int)) == {1}
    # The link's refused filter leaves the URL too: reloading the page would otherwise record a new attempt each time.
    assert "shop" not in at.query_params
    at.run()  # the next click on the page: the refused shop filter and link are not tried (and recorded) again
    assert not at.exception and "conversation" not in at.query_params
    with read_session(console_db) as s:
        again = s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.outcome == "refused", AuditRecord.actor == "sue"))
    assert again == 2


def test_provider_and_judge_score_filters_on_the_page(console_db: Engine) -> None:
    at = _open(sign_in(open_app(), "engineer"), "conversations.py")
    provider = at.dataframe[0].value["provider"].iloc[0]
    at.text_input(key="f_provider").set_value(provider)
    at = submit(at, "conv_filter_form")
    assert not at.exception and set(at.dataframe[0].value["provider"]) == {provider}
    at.text_input(key="f_provider").set_value("no-such-provider")
    at = submit(at, "conv_filter_form")
    assert not at.exception and len(at.dataframe[0].value) == 0
    at.text_input(key="f_judge_min").set_value("lots")
    at = submit(at, "conv_filter_form")
    assert not at.exception and shown(at.error) == ["Judge score at least must be a number from 1 to 5 (got 'lots')."]
    assert at.text_input(key="f_judge_min").value == "lots"  # the form keeps what was typed


def test_a_huge_shop_id_or_conversation_link_is_one_sentence_not_a_crash(console_db: Engine) -> None:
    huge = "9" * 23
    at = _open(sign_in(open_app(), "engineer"), "conversations.py", shop=huge)
    assert shown(at.warning) == ["The link's filters were not applied: The shop id must be a whole number from 1 to "
                                 f"2,147,483,647 (got '{huge}')."]
    at.text_input(key="f_shop").set_value(huge)
    at = submit(at, "conv_filter_form")
    assert not at.exception and any("shop id must be a whole number" in e for e in shown(at.error))
    assert at.text_input(key="f_shop").value == huge  # the form keeps what was typed
    at = _open(at, "conversations.py", conversation=huge)
    assert not at.exception and f"No conversation with id {huge}." in shown(at.error)


def test_a_masked_search_says_client_details_are_not_matched(console_db: Engine) -> None:
    """A product owner typing a client's name finds none of that client's conversations, and the page says why."""
    conv_id, client = _first(console_db, status="completed", shop_id=1)
    at = _open(sign_in(open_app(), "po"), "conversations.py")
    at.text_input(key="f_search").set_value(client.first_name)
    at = submit(at, "conv_filter_form")
    assert not at.exception
    table = at.dataframe[0].value
    listed = set(table["id"]) if "id" in table else set()  # an empty result has no columns
    assert str(conv_id) not in listed
    assert "the search does not match them" in body_text(at)
    at = _open(sign_in(open_app(), "support"), "conversations.py")
    at.text_input(key="f_search").set_value(client.first_name)
    at = submit(at, "conv_filter_form")
    assert "the search does not match them" not in body_text(at)


def test_after_a_missing_id_the_next_id_typed_opens(console_db: Engine) -> None:
    """The walkthrough's bug: after 'No conversation with id …' the box emptied itself and the next id typed
    was read as '' ("A conversation id is a number (got '')")."""
    conv_id, _ = _first(console_db, status="completed", shop_id=1)
    at = _open(sign_in(open_app(), "support"), "conversations.py")
    at.text_input(key="open_conv_id").set_value("999999")
    at = submit(at, "open_conversation")
    assert not at.exception and "No conversation with id 999999." in shown(at.error)
    assert at.text_input(key="open_conv_id").value == "999999"  # what was typed stays, to be corrected
    at.text_input(key="open_conv_id").set_value(str(conv_id))
    at = submit(at, "open_conversation")
    assert not at.exception and not at.error
    assert f"Conversation {conv_id}" in [h.value for h in at.subheader]


def test_a_links_window_keeps_its_times_through_apply(console_db: Engine) -> None:
    """The walkthrough's finding: an alert's link window (10:15:30–10:45:10) showed as two dates, and Apply widened
    it to whole days without a word. The boxes show the times; an untouched window stays exact; a time picked is
    taken to the minute, an end time to the end of its minute."""
    from datetime import datetime

    at = _open(sign_in(open_app(), "engineer"), "conversations.py", since="2026-01-02T10:15:30+00:00",
               until="2026-01-02T10:45:10+00:00")
    assert at.datetime_input(key="f_since").value == datetime(2026, 1, 2, 10, 15)
    assert at.datetime_input(key="f_until").value == datetime(2026, 1, 2, 10, 45)
    at.selectbox(key="f_status").select("failed")
    at = submit(at, "conv_filter_form")
    assert not at.exception and not at.error
    kept = at.session_state["conv_filters"]
    assert (kept["since"], kept["until"], kept["status"]) == (
        "2026-01-02T10:15:30+00:00", "2026-01-02T10:45:10+00:00", "failed")
    at.datetime_input(key="f_since").set_value(datetime(2026, 1, 2, 11, 0))
    at.datetime_input(key="f_until").set_value(datetime(2026, 1, 2, 11, 30))
    at = submit(at, "conv_filter_form")
    kept = at.session_state["conv_filters"]
    assert (kept["since"], kept["until"]) == ("2026-01-02T11:00:00+00:00", "2026-01-02T11:30:59.999999+00:00")


def test_the_queue_table_counts_the_item_just_taken(console_db: Engine) -> None:
    """The walkthrough's finding: after Next item the Queues table still said held 0 until the page was opened again."""
    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "support"), "review.py")

    def held() -> int:
        table = at.dataframe[0].value
        return int(table.loc[table["queue"] == "opt-outs", "held"].iloc[0])

    assert held() == 0
    at.selectbox(key="review_queue").select("opt-outs")
    at = submit(at, "next_item")
    assert not at.exception and at.session_state["review_item"] is not None
    assert held() == 1


def test_a_right_to_left_override_in_a_review_note_is_shown_not_obeyed(console_db: Engine) -> None:
    """The walkthrough's finding: the transcript showed [U+202E], but the review history and the audit tables drew the
    raw character, which reverses the rest of the cell."""
    from core.services import review as rs

    conv_id, _ = _first(console_db, status="completed", shop_id=1)
    sneaky = "fine \u202eexe.jpg"
    rs.submit_review(actor=system_actor("test"), conversation_id=conv_id, rating=4, note=sneaky,
                     uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "engineer"), "conversations.py", conversation=str(conv_id))
    cells = [str(v) for df in at.dataframe for col in df.value.columns for v in df.value[col]]
    assert any("fine [U+202E]exe.jpg" in c for c in cells), [c for c in cells if "fine" in c or "exe" in c]
    assert not any("\u202e" in c for c in cells)
    at = _open(at, "audit.py")
    cells = [str(v) for df in at.dataframe for col in df.value.columns for v in df.value[col]]
    assert not any("\u202e" in c for c in cells)


def test_after_a_refused_change_of_filters_the_page_says_which_filters_the_table_shows(console_db: Engine) -> None:
    """The form keeps what was typed; the table still shows what was applied before, and the page says so."""
    at = _open(sign_in(open_app(), "po"), "conversations.py")
    assert any("no filters applied" in c for c in shown(at.caption))
    at.text_input(key="f_shop").set_value("99")
    at = submit(at, "conv_filter_form")
    at.text_input(key="f_shop").set_value("")
    at.text_input(key="f_judge_min").set_value("5")
    at.text_input(key="f_judge_max").set_value("1")
    at = submit(at, "conv_filter_form")
    assert not at.exception and len(at.error) == 1
    assert any("0 conversations, newest first · filters applied: shop 99" in c for c in shown(at.caption))


def test_next_page_goes_on_from_the_page_on_screen_while_traffic_arrives(console_db: Engine, monkeypatch) -> None:
    """The Chromium walkthrough: with demo traffic running, Next page repeated up to 12 rows of page 1, because the
    click's rerun read page 1 again (with the new conversations on top) and took its cursor from that."""
    from core.config import reset_settings
    from core.services.conversations import enqueue_conversations

    monkeypatch.setenv("REVIEW_PAGE_SIZE", "10")
    reset_settings()
    at = _open(sign_in(open_app(), "po"), "conversations.py")
    first = [int(i) for i in at.dataframe[0].value["id"]]
    assert len(first) == 10
    enqueue_conversations(actor=system_actor("traffic"), count=3, uow=UnitOfWork(console_db))
    next(b for b in at.button if b.label == "Next page").click()
    at = at.run()
    assert not at.exception
    second = [int(i) for i in at.dataframe[0].value["id"]]
    with read_session(console_db) as s:
        order = s.scalars(select(Conversation.id).order_by(Conversation.created_at.desc(), Conversation.id.desc())).all()
    assert not set(first) & set(second), (first, second)
    after = order.index(first[-1]) + 1
    assert second == order[after:after + 10]  # page 2 starts right after the last row that was shown


def test_review_history_shows_flags_as_words(console_db: Engine) -> None:
    """The Chromium walkthrough: the history's flags column showed a Python list (['wrong_info', 'tone'])."""
    from core.services import review
    from tests.support.data import ROLE_ACTORS

    conv_id, _ = _first(console_db, status="completed", shop_id=1)
    review.submit_review(actor=ROLE_ACTORS["support"], conversation_id=conv_id, rating=2, flags=["tone", "wrong_info"],
                         uow=UnitOfWork(console_db))
    at = _open(sign_in(open_app(), "support"), "conversations.py", conversation=str(conv_id))
    history = [d.value for d in at.dataframe if {"flags", "rating", "reviewer"} <= set(d.value.columns)]
    assert len(history) == 1 and sorted(history[0]["flags"][0].split(", ")) == ["tone", "wrong_info"]
