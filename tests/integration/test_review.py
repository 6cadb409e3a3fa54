"""Conversation review on both databases: filters, full-text search, keyset pages, scope refusals (audited),
masking, reveals, reviews with history, queues that never duplicate and leases that never collide."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from core.auth import system_actor
from core.db import read_session
from core.errors import NotFound, PermissionDenied, UserInputError
from core.models import (
    AuditRecord,
    Client,
    Conversation,
    Message,
    ReviewQueue,
    ReviewQueueItem,
    ReviewRecord,
    ReviewState,
    utcnow,
)
from core.queries import review as rq
from core.queries.conversation_filters import parse_filter
from core.queries.privacy import mask_email, mask_phone
from core.services import review as rs
from core.services import review_queues as qs
from core.uow import UnitOfWork
from tests.conftest import audit_head_seq
from tests.support.data import ROLE_ACTORS, seed_minimal

SYSTEM = system_actor("test")
SUPPORT, PO, ENGINEER = ROLE_ACTORS["support"], ROLE_ACTORS["product_owner"], ROLE_ACTORS["engineer"]
COMPLAINT = "This is terrible, I want a refund for the wrong booking"


def _finished(engine: Engine, shop: int, n: int = 1) -> list[int]:
    with read_session(engine) as s:
        return list(s.scalars(select(Conversation.id).where(Conversation.shop_id == shop,
                                                            Conversation.status == "completed")
                              .order_by(Conversation.id).limit(n)))


def _add_message(engine: Engine, conversation_id: int, content: str, role: str = "client") -> None:
    with UnitOfWork(engine) as uow:
        uow.session.add(Message(conversation_id=conversation_id, role=role, content=content, created_at=utcnow()))
        uow.commit()


@pytest.fixture
def world(engine: Engine) -> Engine:
    seed_minimal(engine)
    _add_message(engine, _finished(engine, 1)[0], COMPLAINT)
    return engine


def test_filters_and_keyset_pages_cover_every_row_once(world: Engine) -> None:
    with read_session(world) as s:
        total = s.scalar(select(func.count()).select_from(Conversation))
        seen, cursor = [], None
        while True:
            page = rq.list_conversations(s, actor=ENGINEER, cursor=cursor, limit=7)
            seen += [r["id"] for r in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
        failed = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"status": "failed", "shop_id": "1"}))
        raw_failed = s.scalars(select(Conversation.id).where(Conversation.status == "failed",
                                                             Conversation.shop_id == 1)).all()
    assert len(seen) == len(set(seen)) == total
    assert sorted(r["id"] for r in failed.rows) == sorted(raw_failed)
    assert all(r["status"] == "failed" and r["shop_id"] == 1 for r in failed.rows)


def test_bad_filters_are_one_sentence(world: Engine) -> None:
    for raw, words in (({"status": "exploded"}, "Unknown status"), ({"rating": "9"}, "rating must be between"),
                       ({"since": "yesterday"}, "ISO-8601"), ({"flag": "rude"}, "Unknown flag")):
        with pytest.raises(UserInputError, match=words):
            parse_filter(raw)


def test_full_text_search_finds_new_messages_at_once(world: Engine) -> None:
    target = _finished(world, 1)[0]
    with read_session(world) as s:
        hits = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "refund"})).rows
        none = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "zebra"})).rows
        both = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "terrible refund"})).rows
    assert [r["id"] for r in hits] == [target] == [r["id"] for r in both]
    assert none == []
    _add_message(world, target, 'zebra "quoted" OR NEAR(x) -minus')  # FTS syntax from a user is only words
    with read_session(world) as s:
        assert [r["id"] for r in rq.list_conversations(s, actor=ENGINEER, filters=parse_filter(
            {"search": 'zebra "quoted" OR'})).rows] == [target]


def test_common_words_take_the_walking_path_with_the_same_answer(world: Engine, monkeypatch) -> None:
    from core.queries import conversation_filters

    with read_session(world) as s:
        by_id = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "refund"}), limit=500).rows
        common = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "thanks"}), limit=500).rows
    monkeypatch.setattr(conversation_filters, "SEARCH_BY_ID", 0)  # every word counts as common now
    with read_session(world) as s:
        walked = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "refund"}), limit=500).rows
        common_walked = rq.list_conversations(s, actor=ENGINEER, filters=parse_filter({"search": "thanks"}),
                                              limit=500).rows
    assert [r["id"] for r in walked] == [r["id"] for r in by_id] and len(by_id) == 1
    assert [r["id"] for r in common_walked] == [r["id"] for r in common] and len(common) >= 1


def test_support_sees_only_their_shops_and_masking_follows_the_role(world: Engine) -> None:
    with read_session(world) as s:
        mine = rq.list_conversations(s, actor=SUPPORT, limit=500).rows
        with pytest.raises(PermissionDenied):
            rq.list_conversations(s, actor=SUPPORT, filters=parse_filter({"shop_id": "2"}))
        masked = rq.list_conversations(s, actor=PO, limit=500).rows
        client = s.get(Client, s.get(Conversation, mine[0]["id"]).client_id)
    assert mine and {r["shop_id"] for r in mine} == {1}
    assert next(r for r in mine if r["id"] == mine[0]["id"])["client"] == f"{client.first_name} {client.last_name}"
    assert all(r["client"].count(".") == 2 and len(r["client"]) == 5 for r in masked)


def test_transcript_outside_scope_is_refused(world: Engine) -> None:
    other = _finished(world, 2)[0]
    with read_session(world) as s:
        with pytest.raises(PermissionDenied):
            rq.get_transcript_or_raise(s, actor=SUPPORT, conversation_id=other)
        with pytest.raises(NotFound):
            rq.get_transcript_or_raise(s, actor=SUPPORT, conversation_id=999_999)
        t = rq.get_transcript_or_raise(s, actor=PO, conversation_id=other)
    assert t["client"]["masked"] and t["client"]["phone"].startswith("•") and "@" in t["client"]["email"]
    assert t["messages"] and {"role", "latency_ms", "prompt_tokens", "cost_usd"} <= set(t["messages"][0])
    assert t["template"]["initial_message"]


def test_a_masked_transcript_masks_the_client_in_the_messages_too(world: Engine) -> None:
    """The header showed 'T. W.' while the agent's message greeted the client by name."""
    conv_id = _finished(world, 1)[0]
    with read_session(world) as s:
        cl = s.get(Client, s.get(Conversation, conv_id).client_id)
        first, last, phone, email = cl.first_name, cl.last_name, cl.phone, cl.email
    _add_message(world, conv_id, f"This is {first.upper()} {last}, call {phone} or {email}. {first}s and "
                                 f"{first}a stay.")
    with read_session(world) as s:
        masked = rq.get_transcript_or_raise(s, actor=PO, conversation_id=conv_id)["messages"][-1]["content"]
        plain = rq.get_transcript_or_raise(s, actor=SUPPORT, conversation_id=conv_id)["messages"][-1]["content"]
    assert masked == (f"This is {first[0]}. {last[0]}., call {mask_phone(phone)} or {mask_email(email)}. "
                      f"{first}s and {first}a stay.")  # whole words only
    assert plain.startswith(f"This is {first.upper()} {last}, call {phone}")


def test_notes_the_judges_rationale_and_reasons_mask_the_client_too(world: Engine) -> None:
    """Only the messages were masked: a reviewer's note, the judge model's rationale or a reason typed in the
    audit trail that named the client showed the name to a reader who sees 'T. W.' in the header."""
    from core.models import JudgeScore

    conv_id = _finished(world, 1)[0]
    with read_session(world) as s:
        cl = s.get(Client, s.get(Conversation, conv_id).client_id)
        first, last, phone = cl.first_name, cl.last_name, cl.phone
    rs.submit_review(actor=SUPPORT, conversation_id=conv_id, rating=2, note=f"{first} {last} was double-booked",
                     uow=UnitOfWork(world))
    rs.set_review_state(actor=SUPPORT, conversation_id=conv_id, state="escalated", reason=f"call {phone} back",
                        uow=UnitOfWork(world))
    with UnitOfWork(world) as uow:
        uow.session.add(JudgeScore(conversation_id=conv_id, rating=2.0, flags=[], provider="openai", model="m",
                                   rationale=f"The agent told {first} the wrong time."))
        uow.commit()
    with read_session(world) as s:
        masked = rq.get_transcript_or_raise(s, actor=PO, conversation_id=conv_id)
        plain = rq.get_transcript_or_raise(s, actor=SUPPORT, conversation_id=conv_id)
    said = [masked["reviews"][-1]["note"], masked["judge"]["rationale"], *[a["reason"] for a in masked["audit"]]]
    assert said[:2] == [f"{first[0]}. {last[0]}. was double-booked", f"The agent told {first[0]}. the wrong time."]
    assert f"call {mask_phone(phone)} back" in said
    assert not [t for t in said if first in t or phone in t]
    assert plain["reviews"][-1]["note"] == f"{first} {last} was double-booked"  # support sees their shops' clients
    assert plain["judge"]["rationale"] == f"The agent told {first} the wrong time."
    with read_session(world) as s:
        exported = {r["conversation_id"]: r for r in rq.export_reviews(s, actor=PO)}
    assert exported[conv_id]["note"] == f"{first[0]}. {last[0]}. was double-booked"


def test_a_masked_reader_cannot_find_a_conversation_by_its_clients_name(world: Engine) -> None:
    """A product owner saw 'V.' in the transcript, yet searching 'Victoria' listed exactly her conversations."""
    conv_id = _finished(world, 1)[0]
    with read_session(world) as s:
        cl = s.get(Client, s.get(Conversation, conv_id).client_id)
        first, phone = cl.first_name, cl.phone
    _add_message(world, conv_id, f"Happy birthday, {first}! Reply to {phone} to book.")
    _add_message(world, _finished(world, 2)[0], f"{first} from the front desk says hi, happy birthday")

    def found(actor: object, term: str) -> set[int]:
        with read_session(world) as s:
            return {r["id"] for r in rq.list_conversations(s, actor=actor, limit=500,
                                                           filters=parse_filter({"search": term})).rows}
    assert conv_id in found(SUPPORT, first.lower()) and conv_id in found(SUPPORT, phone)
    assert conv_id not in found(PO, first) and conv_id not in found(PO, f"birthday {first.upper()}")
    assert conv_id not in found(PO, phone)
    assert conv_id in found(PO, "birthday")  # the words they can read still find it
    assert _finished(world, 2)[0] in found(PO, first)  # the name of someone else than the client is shown unmasked
    rs.reveal_client(actor=PO, conversation_id=conv_id, reason="client called", uow=UnitOfWork(world))
    assert conv_id in found(PO, first)  # revealed: the name is theirs to read and to search


def _found(engine: Engine, actor: object, term: str) -> set[int]:
    with read_session(engine) as s:
        return {r["id"] for r in rq.list_conversations(s, actor=actor, limit=500,
                                                       filters=parse_filter({"search": term})).rows}


@pytest.mark.parametrize("term", ["{first}-", "#{first}", "{first}/", "[{first}]", "{first}…", "{first}'s",
                                  "{phone_digits}"])
def test_punctuation_or_a_bare_number_finds_no_masked_client(world: Engine, term: str) -> None:
    """The first guard compared whole words: 'Ray-', '#Ray', "Ray's" and the phone without its '+' still found the
    client (found by a review)."""
    conv = _finished(world, 1)[0]
    with read_session(world) as s:
        cl = s.get(Client, s.get(Conversation, conv).client_id)
        first, phone = cl.first_name, cl.phone
    _add_message(world, conv, f"Happy birthday {first}'s day, {first}! Reply to {phone}.")
    probe = term.format(first=first, phone_digits=phone.lstrip("+"))
    assert conv in _found(world, SUPPORT, first)
    assert conv not in _found(world, PO, probe)


@pytest.mark.parametrize("name, probe", [("Mary-Jane", "Mary"), ("Anna Maria", "Anna"), ("Élodie", "élodie"),
                                         ("Élodie", "Elodie")])
def test_compound_and_accented_names_find_no_masked_client(world: Engine, name: str, probe: str) -> None:
    conv = _finished(world, 1)[0]
    with UnitOfWork(world) as uow:
        client = uow.session.get(Client, uow.session.get(Conversation, conv).client_id)
        client.first_name = name
        uow.commit()
    _add_message(world, conv, f"Hello {name}, your appointment is confirmed")
    assert conv not in _found(world, PO, probe)
    assert conv in _found(world, PO, "appointment confirmed")


def test_a_masked_search_fills_its_pages_and_loses_no_row(world: Engine) -> None:
    """Pages of a masked search skip what only the client's details match, and every readable match comes once."""
    with UnitOfWork(world) as uow:
        ids = list(uow.session.scalars(select(Conversation.id).order_by(Conversation.id).limit(12)))
        for n, conv_id in enumerate(ids):  # half greet a client named Zebrawood, half mention zebrawood planks
            conv = uow.session.get(Conversation, conv_id)
            client = Client(shop_id=conv.shop_id, first_name="Zebrawood" if n % 2 else "Oak", last_name="Tree")
            uow.session.add(client)
            uow.session.flush()
            conv.client_id = client.id
        uow.commit()
    for n, conv_id in enumerate(ids):
        _add_message(world, conv_id, "Hi Zebrawood" if n % 2 else "zebrawood planks are in stock")
    readable, pages, cursor = set(), 0, None
    while True:
        with read_session(world) as s:
            page = rq.list_conversations(s, actor=PO, limit=2, cursor=cursor,
                                         filters=parse_filter({"search": "zebrawood"}))
        readable |= {r["id"] for r in page.rows}
        pages += 1
        assert len(page.rows) == 2 or page.next_cursor is None
        if not (cursor := page.next_cursor):
            break
    assert readable == set(ids[0::2]) and pages == 3


def test_reveal_is_audited_and_expires(world: Engine) -> None:
    conv = _finished(world, 2)[0]
    with pytest.raises(UserInputError):
        rs.reveal_client(actor=PO, conversation_id=conv, reason=" ", uow=UnitOfWork(world))
    with pytest.raises(PermissionDenied):
        rs.reveal_client(actor=SUPPORT, conversation_id=conv, reason="curious", uow=UnitOfWork(world))
    grant = rs.reveal_client(actor=PO, conversation_id=conv, reason="client called about it", uow=UnitOfWork(world))
    with read_session(world) as s:
        shown = rq.get_transcript_or_raise(s, actor=PO, conversation_id=conv)["client"]
        other_user = rq.get_transcript_or_raise(s, actor=ENGINEER, conversation_id=conv)["client"]
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "client.reveal")
                        .order_by(AuditRecord.seq.desc())).first()
        refused = s.scalars(select(AuditRecord).where(AuditRecord.action == "client.reveal",
                                                      AuditRecord.outcome == "refused")).all()
    assert not shown["masked"] and other_user["masked"]
    assert rec.actor == PO.username and rec.reason == "client called about it" and rec.target == f"conversation {conv}"
    assert [r.actor for r in refused] == [SUPPORT.username]
    assert grant["expires_at"] - utcnow() <= timedelta(minutes=10)
    with UnitOfWork(world) as uow:  # ten minutes later
        from core.models import RevealGrant

        uow.session.execute(RevealGrant.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    with read_session(world) as s:
        assert rq.get_transcript_or_raise(s, actor=PO, conversation_id=conv)["client"]["masked"]


def test_review_edit_keeps_history_and_bad_input_writes_nothing(world: Engine) -> None:
    conv = _finished(world, 1)[0]
    before = audit_head_seq(world)
    for rating, flags, words in ((9, [], "from 1 to 5"), ("x", [], "whole number"), (3, ["rude"], "Unknown flag")):
        with pytest.raises(UserInputError, match=words):
            rs.submit_review(actor=SUPPORT, conversation_id=conv, rating=rating, flags=flags, uow=UnitOfWork(world))
    with pytest.raises(NotFound):
        rs.submit_review(actor=SUPPORT, conversation_id=999_999, rating=3, uow=UnitOfWork(world))
    assert audit_head_seq(world) == before
    rs.submit_review(actor=SUPPORT, conversation_id=conv, rating=2, flags=["tone"], note="curt", uow=UnitOfWork(world))
    rs.submit_review(actor=SUPPORT, conversation_id=conv, rating=4, flags=[], note="fine on reread",
                     uow=UnitOfWork(world))
    with read_session(world) as s:
        recs = s.scalars(select(ReviewRecord).where(ReviewRecord.conversation_id == conv).order_by(ReviewRecord.id)).all()
        state = s.get(ReviewState, conv)
    assert [(r.rating, r.current) for r in recs] == [(2, False), (4, True)] and recs[1].replaces_id == recs[0].id
    assert (state.state, state.rating, state.flags, state.reviews) == ("reviewed", 4, "", 1)
    rs.set_review_state(actor=SUPPORT, conversation_id=conv, state="escalated", reason="check with shop",
                        uow=UnitOfWork(world))
    with pytest.raises(UserInputError):
        rs.set_review_state(actor=SUPPORT, conversation_id=conv, state="escalated", reason="again", uow=UnitOfWork(world))
    rs.set_review_state(actor=SUPPORT, conversation_id=conv, state="resolved", reason="done", uow=UnitOfWork(world))
    with read_session(world) as s:
        assert s.get(ReviewState, conv).state == "resolved"
        flagged = rq.list_conversations(s, actor=SUPPORT, filters=parse_filter({"review_state": "resolved"})).rows
    assert [r["id"] for r in flagged] == [conv]


def test_review_outside_scope_is_refused_and_audited(world: Engine) -> None:
    other = _finished(world, 2)[0]
    with pytest.raises(PermissionDenied):
        rs.submit_review(actor=SUPPORT, conversation_id=other, rating=3, uow=UnitOfWork(world))
    with pytest.raises(PermissionDenied):
        rs.submit_review(actor=PO, conversation_id=other, rating=3, uow=UnitOfWork(world))
    with read_session(world) as s:
        refused = s.scalars(select(AuditRecord.actor).where(AuditRecord.outcome == "refused",
                                                            AuditRecord.action == "review.submit")).all()
        assert s.scalar(select(func.count()).select_from(ReviewRecord)) == 0
    assert sorted(refused) == sorted([SUPPORT.username, PO.username])


def test_fill_never_duplicates_and_progress_equals_raw_counts(world: Engine) -> None:
    first = qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world))
    again = qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world))
    with read_session(world) as s:
        failed = s.scalar(select(func.count()).select_from(Conversation).where(Conversation.status == "failed"))
        opted = s.scalar(select(func.count()).select_from(Conversation).where(Conversation.status == "opted_out"))
        items = s.execute(select(ReviewQueue.name, func.count()).join(ReviewQueueItem)
                          .group_by(ReviewQueue.name)).all()
    assert first["failed"] == failed and first["opt-outs"] == opted and first["complaints"] == 1
    assert set(again.values()) == {0}
    assert dict(items) == {k: v for k, v in first.items() if v}
    item = qs.next_item(actor=SUPPORT, queue="complaints", uow=UnitOfWork(world))
    rs.submit_review(actor=SUPPORT, conversation_id=item["conversation_id"], rating=1, flags=["tone"],
                     uow=UnitOfWork(world))
    with read_session(world) as s:
        progress = {p["queue"]: p for p in rq_progress(s)}
        done = s.scalar(select(func.count()).select_from(ReviewQueueItem).where(ReviewQueueItem.done_at.is_not(None)))
    assert progress["complaints"]["done"] == 1 == done
    assert progress["failed"]["total"] == failed


def rq_progress(s):
    from core.queries.review_stats import queue_progress

    return queue_progress(s, actor=ENGINEER)


def test_next_item_leases_to_one_reviewer_and_an_abandoned_lease_returns(world: Engine) -> None:
    qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world))
    a = qs.next_item(actor=ENGINEER, queue="opt-outs", uow=UnitOfWork(world))
    b = qs.next_item(actor=ROLE_ACTORS["admin"], queue="opt-outs", uow=UnitOfWork(world))
    assert a and b and a["item_id"] != b["item_id"]
    assert qs.next_item(actor=ENGINEER, queue="opt-outs", uow=UnitOfWork(world))["item_id"] == a["item_id"]
    later = utcnow() + timedelta(hours=1)
    assert rs.release_abandoned_leases(uow=UnitOfWork(world), now=later) == 2
    with pytest.raises(UserInputError, match="No review queue named"):
        qs.next_item(actor=ENGINEER, queue="nope", uow=UnitOfWork(world))
    with pytest.raises(PermissionDenied):
        qs.next_item(actor=PO, queue="opt-outs", uow=UnitOfWork(world))


def test_a_skipped_item_goes_to_the_back_of_its_queue(world: Engine) -> None:
    """Skip gave the item back at the head of the queue: the next Next item handed over the same one, for ever."""
    qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world))
    with read_session(world) as s:
        queue_id = s.scalar(select(ReviewQueue.id).where(ReviewQueue.name == "opt-outs"))
        open_items = s.scalar(select(func.count()).select_from(ReviewQueueItem).where(
            ReviewQueueItem.queue_id == queue_id, ReviewQueueItem.done_at.is_(None)))
    assert open_items >= 2
    seen = []
    for _ in range(open_items):
        item = qs.next_item(actor=ENGINEER, queue="opt-outs", uow=UnitOfWork(world))
        seen.append(item["item_id"])
        qs.release_item(actor=ENGINEER, item_id=item["item_id"], uow=UnitOfWork(world))
    assert len(set(seen)) == open_items, "every open item comes round once before the first skipped one again"
    assert qs.next_item(actor=ENGINEER, queue="opt-outs", uow=UnitOfWork(world))["item_id"] == seen[0]
    # Each skip moved an item in a queue every reviewer shares: who did it, and from where to where, is audited.
    with read_session(world) as s:
        skips = s.scalars(select(AuditRecord).where(AuditRecord.action == "review.release")
                          .order_by(AuditRecord.id)).all()
    assert [(r.actor, r.target) for r in skips] == [(ENGINEER.username, f"item {i}") for i in seen]
    assert all(r.after["priority"] > r.before["priority"] and r.after["queue"] == "opt-outs" for r in skips)


def test_disable_from_pattern_carries_the_evidence(world: Engine) -> None:
    conv = _finished(world, 1)[0]
    rs.submit_review(actor=ENGINEER, conversation_id=conv, rating=1, flags=["hallucination"], uow=UnitOfWork(world))
    with read_session(world) as s:
        agent_type = s.get(Conversation, conv).agent_type
    rs.disable_agent_type_from_pattern(actor=ENGINEER, agent_type=agent_type, reason="hallucinating prices",
                                       evidence={"queue": "sample", "filter": "flag=hallucination"},
                                       uow=UnitOfWork(world))
    with read_session(world) as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "agent_type.disable")).one()
    assert "queue=sample" in rec.reason and "flagged=1" in rec.reason
    assert agent_type in rec.after["disabled_agent_types"]


def test_ten_reviewers_at_once_never_get_the_same_item(pg_engine: Engine) -> None:
    """PostgreSQL, real threads: each reviewer asks for the next item, reviews it, asks again until the queue is
    empty; every item goes to exactly one reviewer."""
    from concurrent.futures import ThreadPoolExecutor

    from core.auth import Actor, Role

    seed_minimal(pg_engine, conversations=1000)
    qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(pg_engine))
    with read_session(pg_engine) as s:
        queued = s.scalar(select(func.count()).select_from(ReviewQueueItem).join(ReviewQueue)
                          .where(ReviewQueue.name == "sample"))

    def work(n: int) -> list[int]:
        me, got = Actor(username=f"reviewer{n}", role=Role.ENGINEER, source="test"), []
        while (item := qs.next_item(actor=me, queue="sample", uow=UnitOfWork(pg_engine))) is not None:
            got.append(item["item_id"])
            rs.submit_review(actor=me, conversation_id=item["conversation_id"], rating=3, uow=UnitOfWork(pg_engine))
        return got

    with ThreadPoolExecutor(10) as pool:
        claimed = [i for got in pool.map(work, range(10)) for i in got]
    assert queued >= 20 and len(claimed) == len(set(claimed)) == queued


def test_the_workers_fill_round_fills_and_judges(world: Engine) -> None:
    from core.models import JudgeScore
    from core.review.auto import fill_once

    added = fill_once(world)
    with read_session(world) as s:
        judged = s.scalars(select(JudgeScore)).all()
        audit_actors = set(s.scalars(select(AuditRecord.actor).where(AuditRecord.action.in_(("review.fill",
                                                                                             "review.judge")))))
    assert added["failed"] >= 1 and judged and audit_actors == {"worker:review"}
    assert all(j.provider == "offline-heuristic" and j.rationale.startswith("heuristic:") for j in judged)


def test_two_reviews_per_item_and_agreement_per_queue(world: Engine) -> None:
    from core.queries.review_stats import reviewer_agreement

    qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world))
    qs.set_queue_options(actor=ENGINEER, name="opt-outs", reviews_per_item=2, uow=UnitOfWork(world))
    with pytest.raises(PermissionDenied):
        qs.set_queue_options(actor=SUPPORT, name="opt-outs", reviews_per_item=3, uow=UnitOfWork(world))
    admin = ROLE_ACTORS["admin"]
    first = qs.next_item(actor=ENGINEER, queue="opt-outs", uow=UnitOfWork(world))
    rs.submit_review(actor=ENGINEER, conversation_id=first["conversation_id"], rating=2, flags=["tone"],
                     uow=UnitOfWork(world))
    again = qs.next_item(actor=ENGINEER, queue="opt-outs", uow=UnitOfWork(world))
    second = qs.next_item(actor=admin, queue="opt-outs", uow=UnitOfWork(world))
    assert again["item_id"] != first["item_id"] and second["item_id"] == first["item_id"]  # still open for a 2nd
    rs.submit_review(actor=admin, conversation_id=first["conversation_id"], rating=2, flags=["tone"],
                     uow=UnitOfWork(world))
    with read_session(world) as s:
        assert s.get(ReviewQueueItem, first["item_id"]).done_at is not None
        agreement = {a["queue"]: a for a in reviewer_agreement(s, actor=ENGINEER)}
    assert agreement["opt-outs"]["items_with_two_reviews"] == 1


def test_a_first_fill_can_look_back_over_older_history(world: Engine) -> None:
    """make run fills the queues over the demo's whole history: the workers' rounds only look REVIEW_FILL_DAYS back."""
    from core.models import utcnow

    later = utcnow() + timedelta(days=40)  # every conversation of the world is now 40 days old
    with pytest.raises(UserInputError):
        qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world), now=later, days=0)
    assert set(qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world), now=later).values()) == {0}
    with read_session(world) as s:
        failed = s.scalar(select(func.count()).select_from(Conversation).where(Conversation.status == "failed"))
    assert failed >= 1
    assert qs.fill_queues(actor=SYSTEM, uow=UnitOfWork(world), now=later, days=60)["failed"] == failed
