"""The review CLI as a person uses it: one sentence and exit 2 for bad input, 3 (audited) outside one's shops."""
from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import Engine, select

from core.auth import system_actor
from core.cli import main
from core.db import read_session
from core.models import AuditRecord, Conversation, JudgeScore, ReviewRecord
from core.services import users
from core.uow import UnitOfWork
from tests.support.data import seed_minimal

ADMIN = system_actor("test")


@pytest.fixture
def cli_world(engine: Engine) -> dict[str, int]:
    seed_minimal(engine)
    users.add_user(actor=ADMIN, username="sup", password="long enough pw", role="support", shops=[1],
                   uow=UnitOfWork(engine))
    users.add_user(actor=ADMIN, username="owner", password="long enough pw", role="product_owner",
                   uow=UnitOfWork(engine))
    with read_session(engine) as s:
        ids = {shop: s.scalars(select(Conversation.id).where(Conversation.shop_id == shop,
                                                            Conversation.status == "completed")).first()
               for shop in (1, 2)}
    return ids


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_show_submit_and_export(cli_world: dict[str, int], engine: Engine, capsys) -> None:
    code, out, _ = run(capsys, "--actor", "sup", "conversations", "list", "--json", "--limit", "500")
    rows = json.loads(out)["rows"]
    assert code == 0 and rows and {r["shop_id"] for r in rows} == {1}
    code, out, _ = run(capsys, "--actor", "sup", "conversations", "show", str(cli_world[1]))
    assert code == 0 and f"conversation {cli_world[1]}" in out and "(masked)" not in out
    code, out, _ = run(capsys, "--actor", "sup", "review", "submit", str(cli_world[1]), "--rating", "2", "--flags",
                       "tone,wrong_info", "--note", "=HYPERLINK(\"x\")")
    assert code == 0 and "rating 2" in out
    code, out, _ = run(capsys, "--actor", "owner", "review", "export", "--format", "csv")
    exported = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["conversation_id"] for r in exported] == [str(cli_world[1])]
    assert exported[0]["note"].startswith("'=") and exported[0]["client"].count(".") == 2  # masked, inert
    code, out, _ = run(capsys, "--actor", "owner", "review", "export", "--format", "jsonl")
    assert json.loads(out.splitlines()[0])["flags"] == "wrong_info,tone"


def test_bad_input_is_one_sentence_and_writes_nothing(cli_world: dict[str, int], engine: Engine, capsys) -> None:
    for argv, words in ((("review", "submit", str(cli_world[1]), "--rating", "7"), "from 1 to 5"),
                        (("review", "submit", str(cli_world[1]), "--rating", "3", "--flags", "rude"), "Unknown flag"),
                        (("conversations", "list", "--status", "exploded"), "Unknown status"),
                        (("review", "next", "--queue", "nope"), "No review queue named")):
        code, _, err = run(capsys, "--actor", "sup", *argv)
        assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--actor", "sup", "review", "submit", "999999", "--rating", "3")
    assert code == 1 and "No conversation with id 999999" in err
    with read_session(engine) as s:
        assert s.scalars(select(ReviewRecord)).all() == []


def test_another_shops_conversation_is_refused_and_audited(cli_world: dict[str, int], engine: Engine, capsys) -> None:
    code, out, err = run(capsys, "--actor", "sup", "conversations", "show", str(cli_world[2]))
    assert code == 3 and out == "" and "no access" in err
    with read_session(engine) as s:
        rec = s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    assert (rec.actor, rec.action, rec.outcome, rec.target) == ("sup", "transcript.read", "refused",
                                                                f"conversation {cli_world[2]}")
    code, _, _ = run(capsys, "--actor", "sup", "conversations", "list", "--shop", "2")
    assert code == 3


def test_fill_next_judge_and_stats(cli_world: dict[str, int], engine: Engine, capsys) -> None:
    code, out, _ = run(capsys, "review", "fill")
    assert code == 0 and "opt-outs: +" in out
    code, out, _ = run(capsys, "review", "judge")
    with read_session(engine) as s:
        judged = s.scalars(select(JudgeScore)).all()
    assert code == 0 and judged and {j.provider for j in judged} == {"offline-heuristic"}
    code, out, _ = run(capsys, "--actor", "sup", "review", "next", "--queue", "opt-outs", "--json")
    item = json.loads(out)
    assert code == 0 and item["queue"] == "opt-outs"
    code, out, _ = run(capsys, "--actor", "sup", "review", "stats", "--json")
    queues = {q["queue"]: q for q in json.loads(out)["queues"]}
    assert code == 0 and queues["opt-outs"]["held"] == 1
