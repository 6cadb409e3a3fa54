"""`conversations list|show` and `review next|submit|escalate|resolve|reveal|fill|queue|judge|stats|export`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli.common import actor_from_args, audited_read, emit, name_list, row_id, seconds, whole
from core.db import get_engine, read_session
from core.errors import PermissionDenied
from core.queries import review as rq
from core.queries import review_stats
from core.queries.conversation_filters import parse_filter
from core.services import review as rs
from core.services import review_judge, review_queues
from core.services.guard import record_refusal
from core.uow import UnitOfWork

FILTER_FLAGS = ("status", "agent_type", "shop", "channel", "provider", "since", "until", "review_state", "rating",
                "flag", "has_error", "judge_min", "judge_max", "search")


def register(sub: argparse._SubParsersAction) -> None:
    conv = _conversations_group(sub)
    ls = conv.add_parser("list", help="conversations in your shops, newest first, filtered on the server")
    for name in FILTER_FLAGS:
        ls.add_argument(f"--{name.replace('_', '-')}", dest=name)
    ls.add_argument("--limit", type=whole(1, 500), default=50)
    ls.add_argument("--cursor", help="continue after the page that printed this cursor")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_conversations)
    show = conv.add_parser("show", help="one conversation: transcript, template, failure, reviews, audit trail")
    show.add_argument("id", type=row_id)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_conversation)
    _review_group(sub)


def _conversations_group(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The `conversations` group, with the runtime's `enqueue` beside the reads."""
    from core.cli.runtime_commands import add_enqueue

    conv = sub.add_parser("conversations", help="list, show and enqueue conversations").add_subparsers(
        dest="conv_command", required=True)
    add_enqueue(conv)
    return conv


def _review_group(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("review", help="review queues, ratings and flags").add_subparsers(dest="review_command",
                                                                                      required=True)
    n = r.add_parser("next", help="lease the next item of a queue to you")
    n.add_argument("--queue", required=True)
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=next_item)
    s = r.add_parser("submit", help="rate and flag a conversation (again: an edit, history kept)")
    s.add_argument("id", type=row_id)
    s.add_argument("--rating", required=True)
    s.add_argument("--flags", type=name_list, default=[])
    s.add_argument("--note", default="")
    s.set_defaults(func=submit)
    for state, verb in (("escalated", "escalate"), ("resolved", "resolve")):
        e = r.add_parser(verb, help=f"mark a conversation {state} (reason required)")
        e.add_argument("id", type=row_id)
        e.add_argument("--reason", required=True)
        e.set_defaults(func=change_state, state=state)
    v = r.add_parser("reveal", help="break glass: see one conversation's client data unmasked for a while (audited)")
    v.add_argument("id", type=row_id)
    v.add_argument("--reason", required=True)
    v.set_defaults(func=reveal)
    f = r.add_parser("fill", help="add matching conversations to the queues (never twice)")
    f.add_argument("--every", type=seconds(0.1, 86_400), help="repeat every this many seconds until stopped")
    f.add_argument("--days", type=whole(1, 3650),
                   help="look back this many days (default REVIEW_FILL_DAYS); a first fill after loading history "
                        "looks back over all of it")
    f.set_defaults(func=fill)
    qo = r.add_parser("queue", help="set a queue's reviews per item (2+: agreement between reviewers) and order")
    qo.add_argument("name")
    qo.add_argument("--reviews-per-item", type=int)
    qo.add_argument("--order-by", choices=("newest", "judge"))
    qo.set_defaults(func=queue_options)
    j = r.add_parser("judge", help="pre-score queued conversations with the judge")
    j.add_argument("--limit", type=whole(1, 10_000), default=100)
    j.set_defaults(func=judge)
    st = r.add_parser("stats", help="queue and reviewer progress, agreement, judge vs people")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=stats)
    x = r.add_parser("export", help="reviewed conversations as CSV or JSON lines (client data masked as you see it)")
    x.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    x.set_defaults(func=export)


def list_conversations(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    raw = {("shop_id" if k == "shop" else k): getattr(args, k) for k in FILTER_FLAGS}
    filters = parse_filter(raw)
    page = audited_read(actor, "conversation.read", lambda s: rq.list_conversations(
        s, actor=actor, filters=filters, cursor=args.cursor, limit=args.limit))
    lines = [f"{r['id']:>8}  {r['created_at']:%Y-%m-%d %H:%M}  shop {r['shop_id']:<3} {r['agent_type']:<20} "
             f"{r['status']:<16} {r['review_state']:<10} {r['rating'] or '-'}  {r['client']}" for r in page.rows]
    if page.next_cursor:
        lines.append(f"more: --cursor {page.next_cursor}")
    emit({"rows": page.rows, "next_cursor": page.next_cursor}, as_json=args.json,
         text="\n".join(lines) or "no conversations match")
    return 0


def show_conversation(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    engine = get_engine()
    try:
        with read_session(engine) as s:
            t = rq.get_transcript_or_raise(s, actor=actor, conversation_id=args.id)
    except PermissionDenied as exc:
        record_refusal(actor=actor, action=rq.TRANSCRIPT_READ, target=f"conversation {args.id}",
                       reason=f"unauthorized client data: {exc}", uow=UnitOfWork(engine))
        raise
    emit(t, as_json=args.json, text=_transcript_text(t))
    return 0


def _transcript_text(t: dict[str, Any]) -> str:
    c = t["client"]
    head = [f"conversation {t['id']}: {t['agent_type']} in shop {t['shop_id']} ({t['shop']}), {t['channel']}, "
            f"{t['status']}", f"client: {c['name']}, {c['phone']}, {c['email']}" + (" (masked)" if c["masked"] else ""),
            f"attempts {t['attempts']}, provider {t['provider'] or '-'}, worker {t['worker'] or '-'}"]
    if t["error"]:
        head.append(f"error: {t['error']}")
    msgs = [f"{m['created_at']:%Y-%m-%d %H:%M:%S} {m['role']:<6} {m['content']!r} "
            f"({m['latency_ms'] or '-'} ms, {m['prompt_tokens']}+{m['completion_tokens']} tokens)" for m in t["messages"]]
    review = t["review"]
    tail = [f"review: {review['state']}, rating {review['rating'] or '-'}, flags {','.join(review['flags']) or '-'}"]
    if t["judge"]:
        tail.append(f"judge ({t['judge']['provider']}): {t['judge']['rating']:g} {','.join(t['judge']['flags'])}")
    return "\n".join(head + ["", *msgs, "", *tail])


def next_item(args: argparse.Namespace) -> int:
    item = review_queues.next_item(actor=actor_from_args(args), queue=args.queue, uow=UnitOfWork(get_engine()))
    text = (f"item {item['item_id']}: conversation {item['conversation_id']} (yours until "
            f"{item['lease_expires_at']:%H:%M:%S} UTC)") if item else f"queue {args.queue} has nothing left for you"
    emit(item, as_json=args.json, text=text)
    return 0


def submit(args: argparse.Namespace) -> int:
    done = rs.submit_review(actor=actor_from_args(args), conversation_id=args.id, rating=args.rating,
                            flags=args.flags, note=args.note, uow=UnitOfWork(get_engine()))
    print(f"{'edited' if done['edit'] else 'reviewed'} conversation {args.id}: rating {done['rating']}, "
          f"flags {','.join(done['flags']) or '-'}")
    return 0


def change_state(args: argparse.Namespace) -> int:
    rs.set_review_state(actor=actor_from_args(args), conversation_id=args.id, state=args.state, reason=args.reason,
                        uow=UnitOfWork(get_engine()))
    print(f"conversation {args.id} is {args.state}")
    return 0


def reveal(args: argparse.Namespace) -> int:
    grant = rs.reveal_client(actor=actor_from_args(args), conversation_id=args.id, reason=args.reason,
                             uow=UnitOfWork(get_engine()))
    print(f"client data of conversation {args.id} shown to you until {grant['expires_at']:%H:%M:%S} UTC (audited)")
    return 0


def fill(args: argparse.Namespace) -> int:
    from core.cli.runtime_commands import repeat

    actor = actor_from_args(args)

    def once() -> None:
        added = review_queues.fill_queues(actor=actor, uow=UnitOfWork(get_engine()), days=args.days)
        print(", ".join(f"{name}: +{n}" for name, n in sorted(added.items())), flush=True)

    return repeat(once, every=args.every)


def queue_options(args: argparse.Namespace) -> int:
    q = review_queues.set_queue_options(actor=actor_from_args(args), name=args.name, uow=UnitOfWork(get_engine()),
                                        reviews_per_item=args.reviews_per_item, order_by=args.order_by)
    print(f"queue {q['queue']}: {q['reviews_per_item']} review(s) per item, ordered by {q['order_by']}")
    return 0


def judge(args: argparse.Namespace) -> int:
    done = review_judge.judge_queued(actor=actor_from_args(args), uow=UnitOfWork(get_engine()), limit=args.limit)
    print(f"scored {done['scored']} conversations with {done['provider']}"
          + (f"; {done['unavailable']} left for later (judge unavailable)" if done["unavailable"] else ""))
    return 0


def stats(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)

    def read(s: Any) -> dict[str, Any]:
        return {"queues": review_stats.queue_progress(s, actor=actor),
                "reviewers": review_stats.reviewer_progress(s, actor=actor),
                "agreement": review_stats.reviewer_agreement(s, actor=actor),
                "judge": review_stats.judge_agreement(s, actor=actor)}

    data = audited_read(actor, "review.stats", read)
    lines = [f"{q['queue']:<12} {q['done']:>6} done of {q['total']:>6} ({q['held']} held)" for q in data["queues"]]
    lines += [f"{r['reviewer']:<20} {r['reviews']:>5} reviews, mean {r['mean_rating']:.2f}" for r in data["reviewers"]]
    lines += [f"judge vs people, {j['agent_type']}: {j['pairs']} pairs, exact {j['exact']:.0%}, within one "
              f"{j['within_one']:.0%} ({j['providers']})" for j in data["judge"]]
    emit(data, as_json=args.json, text="\n".join(lines) or "no queues yet: `python -m core review fill`")
    return 0


def export(args: argparse.Namespace) -> int:
    from core.export import csv_bytes

    actor = actor_from_args(args)
    rows = audited_read(actor, "review.export", lambda s: list(rq.export_reviews(s, actor=actor)))
    if args.format == "csv":
        sys.stdout.write(csv_bytes(rows, rq.EXPORT_COLUMNS).decode())
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    return 0
