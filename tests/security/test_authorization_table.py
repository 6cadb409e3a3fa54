"""One table of every action, and who may take it, checked through every surface: the services, the API, the CLI
and the console (AppTest). A service function, API route, CLI command or console page without a row fails
`test_every_*_has_a_row`, so a new action cannot ship without saying who may take it.

Roles are the design's: product_owner, support (shop 1), engineer, admin, shop_owner (shop 1), enterprise_owner
(enterprise 1: shop 1) and system (the shell operator, no --actor). API callers also include no token, an expired
one and a revoked one. Allowed means "not refused" (a NotFound or a Conflict after the permission check is fine);
refused means PermissionDenied / exit 3 / 403-404 and, except for the anonymous API callers, an audit record."""
from __future__ import annotations

import argparse
import importlib
import inspect
import io
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

import core.services
from core.auth import Actor, system_actor
from core.cli import main
from core.cli.main import build_parser
from core.config import reset_settings
from core.db import read_session
from core.errors import AgentOpsError, PermissionDenied
from core.models import AuditRecord, RollbackRun, User
from core.queries.users import actor_for_user
from core.seed.runner import seed_demo_users
from core.services import alerts, checklist, controls, conversations, rollbacks, rollups, schema, tokens, users
from core.services import (
    controls, conversations, retention, review, review_judge, review_queues, rollbacks, rollups, schema, tokens, users,
)
from core.uow import UnitOfWork
from dashboard.navigation import PAGES
from tests.dashboard.conftest import open_app, sign_in

PEOPLE = ("product_owner", "support", "engineer", "admin", "shop_owner", "enterprise_owner")
EVERYONE = frozenset({*PEOPLE, "system"})
CONTROL = frozenset({"engineer", "admin", "system"})  # control_system and rollback
ADMINS = frozenset({"admin", "system"})  # manage_users
AUDIT_READERS = frozenset({"product_owner", "engineer", "admin", "system"})
INSTANCE_OWNERS = frozenset({"shop_owner", "enterprise_owner"}) | CONTROL  # an instance of their own shop
ANONYMOUS = frozenset({"none", "expired", "revoked"})  # API callers without a valid token
PUBLIC = EVERYONE | ANONYMOUS
REVIEWERS = frozenset({"support", "engineer", "admin", "system"})  # review_conversations (support: shop 1)
CONSOLE_USERS = {"product_owner": "po", "support": "support", "engineer": "engineer", "admin": "admin"}


@dataclass
class World:
    engine: Engine
    tokens: dict[str, str | None]
    instance: dict[int, int]
    conversation: dict[int, int]
    run_id: int = 0
    token_id: int = 0
    missing: Path = Path("/nonexistent/backup.jsonl.gz")
    blocked: Path = Path("/nonexistent")  # a file where a directory should be: the backup cannot be written
    actors: dict[str, Actor] = field(default_factory=dict)


Call = Callable[[World, Actor], Any]


@dataclass(frozen=True)
class Action:
    allowed: frozenset[str]
    service: tuple[str, Call] | None = None  # ("module.function", how to call it)
    cli: tuple[str, ...] | None = None  # argv; "{role}" is replaced by the acting role
    api: tuple[str, str, str | None] | None = None  # (method, path, body: "shop1" / "shop2" instance)
    page: str | None = None  # a console page's title
    api_ok: frozenset[int] = frozenset({200})
    api_refused: int = 403
    # Callers refused with another code: an owner asking for another shop's instance is told it does not exist.
    api_refused_for: dict[str, int] = field(default_factory=dict)


def svc(name: str, call: Call) -> tuple[str, Call]:
    return name, call


ACTIONS: dict[str, Action] = {
    "kill switch": Action(CONTROL, svc("controls.engage_kill_switch", lambda w, a: controls.engage_kill_switch(
        actor=a, reason="table", uow=UnitOfWork(w.engine))), cli=("kill", "--reason", "table")),
    "activation": Action(CONTROL, svc("controls.set_activation", lambda w, a: controls.set_activation(
        actor=a, mode="full", reason="table", uow=UnitOfWork(w.engine))),
        cli=("activate", "--mode", "full", "--reason", "table")),
    "agent type disable": Action(CONTROL, svc("controls.set_agent_type_enabled", lambda w, a: (
        controls.set_agent_type_enabled(actor=a, agent_type="upsell", enabled=False, reason="t", uow=UnitOfWork(w.engine)))),
        cli=("agent-type", "disable", "upsell", "--reason", "table")),
    "agent type enable": Action(CONTROL, cli=("agent-type", "enable", "upsell", "--reason", "table")),
    "instance of one's shop": Action(INSTANCE_OWNERS, svc("controls.set_instance_status", lambda w, a: (
        controls.set_instance_status(actor=a, instance_id=w.instance[1], status="active", reason="t",
                                     uow=UnitOfWork(w.engine)))), api=("POST", "/api/v2/agents/activate", "shop1")),
    "instance of another shop": Action(CONTROL, api=("POST", "/api/v2/agents/deactivate", "shop2"),
                                       api_refused_for={"shop_owner": 404, "enterprise_owner": 404}),
    "conversation of one's shop": Action(EVERYONE, api=("GET", "/api/v2/agents/conversations/{shop1}", None)),
    "conversation of another shop": Action(AUDIT_READERS, api=("GET", "/api/v2/agents/conversations/{shop2}", None),
                                           api_refused=404),
    "status": Action(EVERYONE, cli=("status",), api=("GET", "/api/v2/agents/status", None)),
    "read replica status": Action(EVERYONE, cli=("replica",)),
    "liveness": Action(PUBLIC, api=("GET", "/health", None)),
    "readiness": Action(PUBLIC, api=("GET", "/api/v2/agents/health", None), api_ok=frozenset({200, 503})),
    "metrics": Action(PUBLIC, cli=("metrics", "--window", "1h"), api=("GET", "/metrics", None)),
    "openapi": Action(PUBLIC, api=("GET", "/openapi.json", None)),  # development; outside it they are off
    "docs": Action(PUBLIC, api=("GET", "/docs", None)),
    "docs redirect": Action(PUBLIC, api=("GET", "/docs/oauth2-redirect", None)),
    "redoc": Action(PUBLIC, api=("GET", "/redoc", None)),
    "enqueue": Action(CONTROL, svc("conversations.enqueue_conversations", lambda w, a: (
        conversations.enqueue_conversations(actor=a, count=1, uow=UnitOfWork(w.engine)))),
        cli=("conversations", "enqueue", "--count", "1")),
    "immediate rollback": Action(CONTROL, svc("rollbacks.start_immediate_rollback", lambda w, a: (
        rollbacks.start_immediate_rollback(actor=a, reason="t", uow=UnitOfWork(w.engine)))),
        cli=("rollback", "immediate", "--reason", "table", "--wait", "0")),
    "immediate rollback check": Action(CONTROL, svc("rollbacks.check_immediate_rollback", lambda w, a: (
        rollbacks.check_immediate_rollback(actor=a, run_id=w.run_id, uow=UnitOfWork(w.engine))))),
    "full rollback": Action(CONTROL, svc("rollbacks.run_full_rollback", lambda w, a: rollbacks.run_full_rollback(
        actor=a, reason="t", uow=UnitOfWork(w.engine))), cli=("rollback", "full", "--reason", "table", "--yes")),
    "database rollback request": Action(CONTROL, svc("rollbacks.request_database_rollback", lambda w, a: (
        rollbacks.request_database_rollback(actor=a, reason="t", typed_environment="development",
                                            uow=UnitOfWork(w.engine)))),
        cli=("rollback", "database", "request", "--confirm", "development", "--reason", "table")),
    "database rollback approve": Action(CONTROL, svc("rollbacks.approve_database_rollback", lambda w, a: (
        rollbacks.approve_database_rollback(actor=a, run_id=999_999, uow=UnitOfWork(w.engine)))),
        cli=("rollback", "database", "approve", "999999")),
    "database rollback run": Action(CONTROL, svc("rollbacks.execute_database_rollback", lambda w, a: (
        rollbacks.execute_database_rollback(actor=a, run_id=999_999, uow=UnitOfWork(w.engine)))),
        cli=("rollback", "database", "run", "999999")),
    "database rollback withdraw": Action(CONTROL, svc("rollbacks.withdraw_database_rollback", lambda w, a: (
        rollbacks.withdraw_database_rollback(actor=a, run_id=999_999, reason="t", uow=UnitOfWork(w.engine)))),
        cli=("rollback", "database", "withdraw", "999999", "--reason", "table")),
    "rollback runs": Action(CONTROL, svc("rollbacks.list_runs", lambda w, a: rollbacks.list_runs(
        actor=a, uow=UnitOfWork(w.engine))), cli=("rollback", "list")),
    "rollups rebuild": Action(CONTROL, svc("rollups.rebuild_rollups", lambda w, a: rollups.rebuild_rollups(
        actor=a, uow=UnitOfWork(w.engine))), cli=("rollups", "rebuild")),
    "retention": Action(CONTROL, svc("retention.apply_retention", lambda w, a: retention.apply_retention(
        actor=a, uow=UnitOfWork(w.engine), keep_months=1, dry_run=True)),
        cli=("retention", "--keep-months", "1", "--dry-run")),  # a dry run: the table's world keeps its rows
    "db setup": Action(CONTROL, svc("schema.setup_database", lambda w, a: schema.setup_database(
        actor=a, engine=w.engine)), cli=("db", "setup")),
    "db verify": Action(EVERYONE, cli=("db", "verify")),
    "db cleanup": Action(CONTROL, svc("schema.cleanup_agent_tables", lambda w, a: schema.cleanup_agent_tables(
        actor=a, uow=UnitOfWork(w.engine), backup_dir=w.blocked)), cli=("db", "cleanup", "--yes")),
    "db restore": Action(CONTROL, svc("schema.restore_agent_tables", lambda w, a: schema.restore_agent_tables(
        actor=a, uow=UnitOfWork(w.engine), path=w.missing)), cli=("db", "restore", "/nonexistent/backup.jsonl.gz")),
    "user add": Action(ADMINS, svc("users.add_user", lambda w, a: users.add_user(
        actor=a, username=f"svc-{a.role.value}".replace("_", "-"), password="long enough pw", role="engineer",
        uow=UnitOfWork(w.engine))), cli=("users", "add", "cli-{role}", "--role", "engineer")),
    "user password": Action(ADMINS, svc("users.set_password", lambda w, a: users.set_password(
        actor=a, username="victim", password="another long pw", uow=UnitOfWork(w.engine))),
        cli=("users", "set-password", "victim")),
    "user disable": Action(ADMINS, svc("users.set_disabled", lambda w, a: users.set_disabled(
        actor=a, username="victim", disabled=False, uow=UnitOfWork(w.engine))), cli=("users", "disable", "victim")),
    "user enable": Action(ADMINS, cli=("users", "enable", "victim")),
    "user role": Action(ADMINS, svc("users.set_role", lambda w, a: users.set_role(
        actor=a, username="victim", role="engineer", uow=UnitOfWork(w.engine))),
        cli=("users", "set-role", "victim", "--role", "engineer")),
    "user list": Action(ADMINS, cli=("users", "list")),
    "token create": Action(ADMINS, svc("tokens.create_token", lambda w, a: tokens.create_token(
        actor=a, username="victim", uow=UnitOfWork(w.engine))), cli=("tokens", "create", "--user", "victim")),
    "token list": Action(ADMINS, svc("tokens.list_tokens", lambda w, a: tokens.list_tokens(
        actor=a, uow=UnitOfWork(w.engine))), cli=("tokens", "list")),
    "token revoke": Action(ADMINS, svc("tokens.revoke_token", lambda w, a: tokens.revoke_token(
        actor=a, token_id=w.token_id, uow=UnitOfWork(w.engine))), cli=("tokens", "revoke", "{token_id}")),
    "seed": Action(ADMINS, cli=("seed", "--test-data", "minimal", "--conversations", "0")),
    "templates check": Action(EVERYONE, cli=("templates", "check")),
    "audit verify": Action(EVERYONE, cli=("audit", "verify")),
    "audit list": Action(AUDIT_READERS, cli=("audit", "list")),
    "config": Action(EVERYONE, cli=("config",)),
    # The checklist: everyone may read it; engineers and admins (Permission.CHECKLIST, the same roles as CONTROL)
    # run, tick, waive, mark deployed and sign off. Run 999999 does not exist: allowed calls end in NotFound.
    "checklist start": Action(CONTROL, svc("checklist.start_run", lambda w, a: checklist.start_run(
        actor=a, uow=UnitOfWork(w.engine), release="table")), cli=("check", "--item", "db.create_tables")),
    "checklist run": Action(CONTROL, svc("checklist.run_checks", lambda w, a: checklist.run_checks(
        actor=a, run_id=999_999, item_id="db.create_tables", uow=UnitOfWork(w.engine)))),
    "checklist tick": Action(CONTROL, svc("checklist.tick_item", lambda w, a: checklist.tick_item(
        actor=a, run_id=999_999, item_id="code.merge", note="table", uow=UnitOfWork(w.engine))),
        cli=("check", "tick", "code.merge", "--note", "table")),
    "checklist waive": Action(CONTROL, svc("checklist.waive_item", lambda w, a: checklist.waive_item(
        actor=a, run_id=999_999, item_id="code.merge", reason="table", uow=UnitOfWork(w.engine))),
        cli=("check", "waive", "code.merge", "--reason", "table")),
    "checklist deployed": Action(CONTROL, svc("checklist.mark_deployed", lambda w, a: checklist.mark_deployed(
        actor=a, run_id=999_999, uow=UnitOfWork(w.engine))), cli=("check", "deployed")),
    "checklist sign-off": Action(CONTROL, svc("checklist.sign_off", lambda w, a: checklist.sign_off(
        actor=a, run_id=999_999, uow=UnitOfWork(w.engine))), cli=("check", "sign-off")),
    "checklist report": Action(EVERYONE, cli=("check", "report", "999999")),
    "checklist items": Action(EVERYONE, cli=("check", "list")),
    "page: checklist": Action(frozenset(CONSOLE_USERS), page="Checklist"),
    "alert rule save": Action(CONTROL, svc("alerts.save_rule", lambda w, a: alerts.save_rule(
        actor=a, spec={"key": f"tbl_{a.role.value}", "metric": "error_rate", "threshold": 0.5},
        uow=UnitOfWork(w.engine)))),
    "alert rule delete": Action(CONTROL, svc("alerts.delete_rule", lambda w, a: alerts.delete_rule(
        actor=a, key="no_such_rule", uow=UnitOfWork(w.engine)))),
    "alert default rules": Action(CONTROL, svc("alerts.install_default_rules", lambda w, a: (
        alerts.install_default_rules(actor=a, uow=UnitOfWork(w.engine)))), cli=("alerts", "defaults")),
    "alert contact save": Action(CONTROL, svc("alerts.save_contact_point", lambda w, a: alerts.save_contact_point(
        actor=a, name=f"c-{a.role.value}", kind="email", target="oncall@example.com", uow=UnitOfWork(w.engine)))),
    "alert contact delete": Action(CONTROL, svc("alerts.delete_contact_point", lambda w, a: (
        alerts.delete_contact_point(actor=a, name="no-such-contact", uow=UnitOfWork(w.engine))))),
    "alert silence": Action(CONTROL, svc("alerts.create_silence", lambda w, a: alerts.create_silence(
        actor=a, matchers="rule=x", minutes=5, reason="t", uow=UnitOfWork(w.engine))),
        cli=("alerts", "silence", "--match", "rule=x", "--minutes", "5", "--reason", "table")),
    "alert silence expire": Action(CONTROL, svc("alerts.expire_silence", lambda w, a: alerts.expire_silence(
        actor=a, silence_id=999_999, uow=UnitOfWork(w.engine)))),
    "alert acknowledge": Action(CONTROL, svc("alerts.acknowledge_alert", lambda w, a: alerts.acknowledge_alert(
        actor=a, alert_id=999_999, comment="t", uow=UnitOfWork(w.engine))), cli=("alerts", "ack", "999999")),
    "alert mitigation": Action(CONTROL, svc("alerts.mitigate_alert", lambda w, a: alerts.mitigate_alert(
        actor=a, alert_id=999_999, action="kill_switch", reason="t", uow=UnitOfWork(w.engine)))),
    "alert test notification": Action(CONTROL, svc("alerts.send_test_notification", lambda w, a: (
        alerts.send_test_notification(actor=a, uow=UnitOfWork(w.engine)))), cli=("alerts", "test")),
    "alert list": Action(EVERYONE, cli=("alerts", "list")),
    "page: alerts": Action(frozenset(CONSOLE_USERS), page="Alerts"),
    "review submit": Action(REVIEWERS, svc("review.submit_review", lambda w, a: review.submit_review(
        actor=a, conversation_id=w.conversation[1], rating=3, uow=UnitOfWork(w.engine))),
        cli=("review", "submit", "{conv1}", "--rating", "3")),
    "review of another shop": Action(REVIEWERS - {"support"}, svc("review.set_review_state", lambda w, a: (
        review.set_review_state(actor=a, conversation_id=w.conversation[2], state="escalated", reason="t",
                                uow=UnitOfWork(w.engine)))), cli=("review", "escalate", "{conv2}", "--reason", "t")),
    "review resolve": Action(REVIEWERS, cli=("review", "resolve", "{conv1}", "--reason", "table")),
    "client reveal": Action(EVERYONE, svc("review.reveal_client", lambda w, a: review.reveal_client(
        actor=a, conversation_id=w.conversation[1], reason="t", uow=UnitOfWork(w.engine))),
        cli=("review", "reveal", "{conv1}", "--reason", "table")),
    "disable from a review pattern": Action(CONTROL, svc("review.disable_agent_type_from_pattern", lambda w, a: (
        review.disable_agent_type_from_pattern(actor=a, agent_type="upsell", evidence={"queue": "t"}, reason="t",
                                               uow=UnitOfWork(w.engine))))),
    "review fill": Action(REVIEWERS, svc("review_queues.fill_queues", lambda w, a: review_queues.fill_queues(
        actor=a, uow=UnitOfWork(w.engine))), cli=("review", "fill")),
    "review next": Action(REVIEWERS, svc("review_queues.next_item", lambda w, a: review_queues.next_item(
        actor=a, queue="failed", uow=UnitOfWork(w.engine))), cli=("review", "next", "--queue", "failed")),
    "review release": Action(REVIEWERS, svc("review_queues.release_item", lambda w, a: review_queues.release_item(
        actor=a, item_id=999_999, uow=UnitOfWork(w.engine)))),
    "review queue options": Action(CONTROL, svc("review_queues.set_queue_options", lambda w, a: (
        review_queues.set_queue_options(actor=a, name="failed", reviews_per_item=2, uow=UnitOfWork(w.engine)))),
        cli=("review", "queue", "failed", "--reviews-per-item", "2")),
    "review judge": Action(REVIEWERS, svc("review_judge.judge_queued", lambda w, a: review_judge.judge_queued(
        actor=a, uow=UnitOfWork(w.engine), limit=1)), cli=("review", "judge", "--limit", "1")),
    "conversations list": Action(EVERYONE, cli=("conversations", "list")),
    "conversation show, one's shop": Action(EVERYONE, cli=("conversations", "show", "{conv1}")),
    "conversation show, another shop": Action(AUDIT_READERS, cli=("conversations", "show", "{conv2}")),
    "review stats": Action(EVERYONE, cli=("review", "stats")),
    "review export": Action(EVERYONE, cli=("review", "export", "--format", "jsonl")),
    "page: agent health": Action(frozenset(CONSOLE_USERS), page="Agent health"),
    "page: conversations": Action(frozenset(CONSOLE_USERS), page="Conversations"),
    "page: review queues": Action(frozenset(CONSOLE_USERS), page="Review queues"),
    "page: controls": Action(CONTROL, page="Controls"),
    "page: rollbacks": Action(CONTROL, page="Rollbacks"),
    "page: audit log": Action(AUDIT_READERS, page="Audit log"),
    "page: users and tokens": Action(ADMINS, page="Users and tokens"),
}

# Service functions that are not actions of their own, and why.
NOT_ACTIONS = {
    "controls.apply_settings_change": "the change inside a caller's unit of work; the caller checks the permission",
    "controls.switch_off": "the kill switch's change to a settings row; no actor",
    "alerts.rule_dict": "a rule's fields as a dict; no state",
    "alerts.mitigations_for": "which mitigations fit a rule; no state",
    "guard.require": "the permission check itself",
    "review.check_review": "validates a rating and flags against the schema; no state",
    "review.release_abandoned_leases": "housekeeping by the system (the worker, `review fill`): no person's action",
    "review_queues.default_queues": "the default queue definitions from config; no state",
    "review_queues.ensure_default_queues": "inside a caller's unit of work (fill_queues)",
    "review_queues.get_queue_or_raise": "a lookup inside a caller's unit of work",
    "review_queues.rule_conditions": "a queue's rules as SQL; no state",
    "review_queues.claim_statement": "the lease statement next_item runs (and the benchmark times)",
    "guard.refuse": "the permission check itself",
    "guard.authorize_read": "the permission check itself",
    "guard.record_refusal": "records a refusal decided elsewhere",
    "rollbacks.describe_deploy_hook": "a description of the configured hook (masked); no state",
    "rollback_runs.finish_run": "inside a caller's unit of work (the rollback services)",
    "rollback_runs.close_if_acknowledged": "inside a caller's unit of work (rollbacks.check_immediate_rollback)",
    "rollback_runs.close_before_newer_version": "inside a caller's unit of work (controls.apply_settings_change)",
    "schema.verify_database": "reads the schema (`db verify`, in the table)",
    "schema.table_counts": "reads row counts (shown before a cleanup)",
    "sessions.sign_in": "establishes who the actor is",
    "sessions.resume_session": "establishes who the actor is",
    "sessions.sign_out": "ends the caller's own session",
    "tokens.authenticate_token": "establishes who the actor is",
    "tokens.use_token": "establishes who the actor is (and when the token was last used)",
    "users.end_sessions": "inside a caller's unit of work (users.set_*)",
    "users.parse_role": "checks a role name; no state",
}
# Commands that are processes, not actions: they take no --actor and change nothing on a person's behalf.
NOT_RUN_COMMANDS = {
    ("worker",): "holds conversations as the system; the kill switch decides what it may start",
    ("api",): "serves the API; every request is authorised through the API rows of this table",
    ("probe",): "telemetry: probe rows and timings, no change on a person's behalf",
    ("alerts", "run"): "the evaluator: alert state and notifications as the system; its rule edits are services",
}


def service_functions() -> Iterator[str]:
    for info in pkgutil.iter_modules(core.services.__path__):
        module = importlib.import_module(f"core.services.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                yield f"{info.name}.{name}"


def cli_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix
        return
    for name, child in subs[0].choices.items():
        yield from cli_commands(child, prefix + (name,))


def api_routes(routes: list) -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            yield from api_routes(route.original_router.routes)
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            yield method, route.path


def test_every_service_function_has_a_row() -> None:
    covered = {a.service[0] for a in ACTIONS.values() if a.service} | set(NOT_ACTIONS)
    assert sorted(set(service_functions()) - covered) == []
    assert sorted(covered - set(service_functions())) == []  # no stale rows either


def test_every_cli_command_has_a_row() -> None:
    covered = {tuple(w for w in a.cli if not w.startswith("-"))[:3] for a in ACTIONS.values() if a.cli}
    missing = [c for c in cli_commands(build_parser()) if c not in NOT_RUN_COMMANDS
               and not any(cov[:len(c)] == c for cov in covered)]
    assert missing == []


def test_every_api_route_has_a_row(api: dict) -> None:
    covered = {(a.api[0], a.api[1]) for a in ACTIONS.values() if a.api}
    templates = {(m, p.replace("{shop1}", "{conversation_id}").replace("{shop2}", "{conversation_id}"))
                 for m, p in covered}
    assert sorted(set(api_routes(api["client"].app.routes)) - templates) == []


def test_every_console_page_has_a_row() -> None:
    assert sorted({p.title for p in PAGES} - {a.page for a in ACTIONS.values() if a.page}) == []


@pytest.fixture
def world(api: dict, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    """The API's users and tokens (one per role), the console's demo users, a victim, a run and a token to revoke."""
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", "true")  # the full rollback calls /bin/true: harmless
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("BACKUP_DIR", str(blocked))  # a cleanup's backup fails: nothing is ever dropped
    reset_settings()
    admin = system_actor("setup")
    seed_demo_users(actor=admin, engine=engine)
    users.add_user(actor=admin, username="victim", password="long enough pw", role="engineer", uow=UnitOfWork(engine))
    run = rollbacks.start_immediate_rollback(actor=admin, reason="setup", uow=UnitOfWork(engine))
    token = tokens.create_token(actor=admin, username="victim", uow=UnitOfWork(engine))
    w = World(engine, api["tokens"], api["instance"], api["conversation"], run.id, token.id, blocked=blocked)
    with read_session(engine) as s:
        for role in PEOPLE:
            user = s.scalars(select(User).where(User.username == f"u-{role.replace('_', '-')}")).one()
            w.actors[role] = actor_for_user(s, user, source="test")
    w.actors["system"] = system_actor("test")
    return w


def newest_audit(engine: Engine) -> AuditRecord:
    with read_session(engine) as s:
        return s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()


def test_services_follow_the_table(world: World) -> None:
    wrong = {}
    for title, action in ACTIONS.items():
        for role, actor in world.actors.items() if action.service else ():
            outcome = _call(lambda: action.service[1](world, actor))
            refused_and_audited = outcome == "refused" and _audited_refusal(world.engine, actor.username)
            if (role in action.allowed) == (outcome == "refused") or (outcome == "refused" and not refused_and_audited):
                wrong[(title, role)] = outcome
    assert wrong == {}


def _call(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except PermissionDenied:
        return "refused"
    except AgentOpsError as exc:
        return f"allowed ({type(exc).__name__})"
    return "allowed"


def _audited_refusal(engine: Engine, username: str) -> bool:
    rec = newest_audit(engine)
    return rec.outcome == "refused" and rec.actor == username


def test_api_follows_the_table(world: World, api: dict) -> None:
    wrong = {}
    for title, action in ACTIONS.items():
        if not action.api:
            continue
        method, template, body = action.api
        path = template.format(shop1=world.conversation[1], shop2=world.conversation[2])
        payload = {"instance_id": world.instance[1 if body == "shop1" else 2]} if body else None
        for caller, token in world.tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            status = api["client"].request(method, path, headers=headers, json=payload).status_code
            expected = action.api_ok if caller in action.allowed else (
                {401} if caller in ANONYMOUS else {action.api_refused_for.get(caller, action.api_refused)})
            if status not in expected:
                wrong[(title, caller)] = (status, sorted(expected))
    assert wrong == {}


def test_cli_follows_the_table(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    wrong = {}
    for title, action in ACTIONS.items():
        for role in sorted(EVERYONE) if action.cli else ():
            argv = [w.format(role=role.replace("_", "-"), token_id=world.token_id, conv1=world.conversation[1],
                             conv2=world.conversation[2]) for w in action.cli]
            as_user = [] if role == "system" else ["--actor", f"u-{role.replace('_', '-')}"]
            monkeypatch.setattr("sys.stdin", io.StringIO("long enough pw\n"))  # users add / set-password
            code = main([*as_user, *argv])
            capsys.readouterr()
            refused = code == 3
            audited = not refused or _audited_refusal(world.engine, as_user[-1] if as_user else "")
            if (role in action.allowed) == refused or not audited:
                wrong[(title, role)] = code
    assert wrong == {}


def test_console_follows_the_table(world: World) -> None:
    files = {p.title: p.file for p in PAGES}
    wrong = {}
    for role, username in CONSOLE_USERS.items():
        at = sign_in(open_app(), username)
        for title, action in ACTIONS.items():
            if not action.page:
                continue
            at.switch_page(f"../pages/{files[action.page]}").run()
            shown = action.page in [t.value for t in at.title]
            refused = any("may not open" in e.value for e in at.error)
            audited = not refused or _audited_refusal(world.engine, username)
            if at.exception or shown != (role in action.allowed) or refused == shown or not audited:
                wrong[(title, role)] = (shown, refused, bool(at.exception))
    assert wrong == {}


def test_database_rollback_runs_were_never_executed(world: World) -> None:
    """The table's allowed calls are harmless: no run ever dropped a table (its targets do not exist)."""
    with read_session(world.engine) as s:
        assert s.scalars(select(RollbackRun).where(RollbackRun.kind == "database",
                                                   RollbackRun.state == "done")).all() == []
