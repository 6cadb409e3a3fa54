"""`users`, `templates check`, `rollups rebuild`, `audit verify`, `config`."""
from __future__ import annotations

import argparse
from datetime import datetime, timezone

from core import audit
from core.audit_anchor import anchor_path, write_anchor
from core.cli.common import actor_from_args, audited_read, emit, id_list, read_password, shop_id, whole
from core.config import get_settings
from core.db import get_engine, read_session
from core.errors import UserInputError
from core.inputs import in_time_range
from core.queries import users as queries_users
from core.queries.audit import list_audit
from core.services import users
from core.services.rollups import rebuild_rollups
from core.templates import check_templates, load_templates
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("users", help="console users").add_subparsers(dest="users_command", required=True)
    a = u.add_parser("add", help="add a user (password from a prompt or stdin)")
    a.add_argument("username")
    a.add_argument("--role", required=True, help="product_owner | support | engineer | admin | shop_owner | enterprise_owner")
    a.add_argument("--shops", type=id_list, default=[], help="shops of a support user or shop owner, e.g. 1,2")
    a.add_argument("--enterprise", type=shop_id, help="enterprise of an enterprise owner")
    a.add_argument("--name", default="")
    a.set_defaults(func=add_user)
    p = u.add_parser("set-password", help="change a password (ends the user's sessions)")
    p.add_argument("username")
    p.set_defaults(func=set_password)
    for name, disabled in (("disable", True), ("enable", False)):
        d = u.add_parser(name, help=f"{name} a user" + (" (ends their sessions)" if disabled else ""))
        d.add_argument("username")
        d.set_defaults(func=set_disabled, disabled=disabled)
    r = u.add_parser("set-role", help="change a user's role (ends their sessions)")
    r.add_argument("username")
    r.add_argument("--role", required=True)
    r.add_argument("--shops", type=id_list)
    r.set_defaults(func=set_role)
    u.add_parser("list", help="list users").set_defaults(func=list_users)

    t = sub.add_parser("templates", help="agent templates").add_subparsers(dest="templates_command", required=True)
    t.add_parser("check", help="load and render every template with sample context").set_defaults(func=templates_check)
    ro = sub.add_parser("rollups", help="hourly rollups").add_subparsers(dest="rollups_command", required=True)
    rb = ro.add_parser("rebuild", help="recompute rollups from raw conversations")
    rb.add_argument("--since", help="YYYY-MM-DD (UTC); default: everything")
    rb.set_defaults(func=rollups_rebuild)
    au = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    au.add_parser("verify", help="check the hash chain for edited or removed records").set_defaults(func=audit_verify)
    al = au.add_parser("list", help="print audit records, newest first")
    al.add_argument("--actor-name", default="", help="a user name, exactly; end it with * for a prefix, e.g. system*")
    al.add_argument("--action", default="", help="prefix, e.g. kill_switch or rollback")
    al.add_argument("--limit", type=whole(1, 10_000), default=50)
    al.set_defaults(func=audit_list)
    c = sub.add_parser("config", help="show the settings in force (secrets masked)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=show_config)


def add_user(args: argparse.Namespace) -> int:
    users.parse_role(args.role)  # before the password is asked for: a typo in the role is said first
    password = read_password(f"Password for {args.username}: ")
    user = users.add_user(actor=actor_from_args(args), username=args.username, password=password, role=args.role,
                          uow=UnitOfWork(get_engine()), name=args.name, shops=args.shops, enterprise_id=args.enterprise)
    print(f"added {user.username} ({user.role})")
    return 0


def set_password(args: argparse.Namespace) -> int:
    password = read_password(f"New password for {args.username}: ")
    users.set_password(actor=actor_from_args(args), username=args.username, password=password, uow=UnitOfWork(get_engine()))
    print(f"password of {args.username} changed; their sessions have ended")
    return 0


def set_disabled(args: argparse.Namespace) -> int:
    users.set_disabled(actor=actor_from_args(args), username=args.username, disabled=args.disabled,
                       uow=UnitOfWork(get_engine()))
    print(f"{args.username} {'disabled; their sessions have ended' if args.disabled else 'enabled'}")
    return 0


def set_role(args: argparse.Namespace) -> int:
    users.set_role(actor=actor_from_args(args), username=args.username, role=args.role, shops=args.shops,
                   uow=UnitOfWork(get_engine()))
    print(f"{args.username} is now {args.role}; their sessions have ended")
    return 0


def list_users(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    people = audited_read(actor, "user.list", lambda s: queries_users.list_users(s, actor=actor))
    for u in people:
        flags = " ".join(f for f, on in (("disabled", u["disabled"]), ("demo", u["demo"])) if on)
        shops = ",".join(map(str, u["shops"]))
        print(f"{u['user']:20} {u['role']:16} {shops:10} {flags}")
    return 0


def templates_check(args: argparse.Namespace) -> int:
    """The shipped templates, then the stored ones the worker renders (it read the shipped file alone, and said ok
    of a database that held none)."""
    from core.seed.catalog import stored_templates

    with read_session() as s:
        stored = stored_templates(s)
    problems = check_templates()
    in_database = check_templates(specs=stored, missing="no template in the database (`python -m core db setup` "
                                                         "installs them)")
    for agent_type, spec in load_templates().items():
        mark = "FAIL" if any(p.startswith(agent_type) for p in problems + in_database) else "ok"
        version = "stored" if agent_type in stored else "NOT STORED"
        print(f"  {mark:5} {agent_type:22} {spec.channel:6} {len(spec.required_variables)} variables, {version}")
    for p in problems + [f"stored {p}" for p in in_database]:
        print(f"error: {p}")
    return 1 if problems or in_database else 0


def rollups_rebuild(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since).replace(tzinfo=timezone.utc)
        except ValueError:
            raise UserInputError(f"--since expects a date such as 2026-11-01 (got {args.since!r}).") from None
        in_time_range(since, "--since")
    n = rebuild_rollups(actor=actor_from_args(args), uow=UnitOfWork(get_engine()), since=since)
    print(f"rebuilt {n:,} rollup rows" + (f" since {args.since}" if args.since else ""))
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    engine = get_engine()
    with read_session(engine) as s:
        result = audit.verify_chain(s)
    print(f"head: #{result.head_seq:,} {result.head_hash}")
    if result.anchor is not None:
        print(f"compared with the last anchor: {result.anchor.describe()} ({anchor_path()})")
    if not result.ok:
        print(f"error: audit chain broken after {result.checked:,} good records: {result.problem}")
        return 1
    sealed = f" ({result.unkeyed:,} from before keying, sealed by the first keyed record)" if result.unkeyed else ""
    print(f"audit chain intact: {result.checked:,} records{sealed}")
    write_anchor(engine, seq=result.head_seq, hash=result.head_hash)
    print(f"anchored #{result.head_seq:,} in {anchor_path()}; keep a copy of that file away from the database")
    return 0


def show_config(args: argparse.Namespace) -> int:
    view = get_settings().public_view()
    emit(view, as_json=args.json, text="\n".join(f"{k:28} {v}" for k, v in view.items()))
    return 0


def audit_list(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    rows, total = audited_read(actor, "audit.list", lambda s: list_audit(
        s, actor=actor, who=args.actor_name, action=args.action, limit=args.limit))
    for r in rows:
        print(f"#{r['seq']:<6} {r['created_at']:%Y-%m-%d %H:%M:%S} {r['actor']:18} {r['source']:8} {r['outcome']:8} "
              f"{r['action']:28} {r['target']} {r['reason']}")
    print(f"{len(rows)} of {total} records")
    return 0
