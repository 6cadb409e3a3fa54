"""`status`, `kill`, `activate`, `agent-type disable|enable`: the checklist's activation and rollback by hand."""
from __future__ import annotations

import argparse

from core.cli.common import actor_from_args, emit, id_list, name_list
from core.db import get_engine, read_session
from core.errors import UserInputError
from core.queries.settings import (
    ActivationState, as_workers_see_it, get_activation_state, percent_candidates, workers_switch_line,
)
from core.services import controls
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("status", help="activation mode, scope and kill-switch state")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=status)
    k = sub.add_parser("kill", help="engage the kill switch: no new conversation starts")
    k.add_argument("--reason", required=True)
    k.set_defaults(func=kill)
    a = sub.add_parser("activate", help="activate with limited or full scope (the checklist's ACTIVATE_AGENTS_V2.sh)")
    a.add_argument("--mode", required=True, choices=["limited", "full", "off"])
    a.add_argument("--shops", type=id_list, default=[])
    a.add_argument("--agent-types", type=name_list, default=[])
    a.add_argument("--percent", type=int, help="limited: this percentage of shops, chosen stably")
    a.add_argument("--reason", required=True)
    a.set_defaults(func=activate)
    t = sub.add_parser("agent-type", help="disable or enable one agent type").add_subparsers(dest="t", required=True)
    for name in ("disable", "enable"):
        p = t.add_parser(name)
        p.add_argument("agent_type")
        p.add_argument("--reason", required=True)
        p.set_defaults(func=agent_type, enabled=name == "enable")


def describe(state: ActivationState, workers: str | None = None) -> str:
    """One paragraph a person reads at a glance (WORKERS: what the live workers' own switch says, if it matters);
    a percentage of shops is named shop by shop."""
    lines = [f"agent system: {'RUNNING' if state.running else 'STOPPED'} (mode {state.mode}, settings version {state.version})"]
    if workers:
        lines.append(f"workers: {workers}")
    elif not state.env_enabled:
        lines.append("AGENT_SYSTEM_ENABLED=false in this environment overrides the stored mode")
    shops = None
    if state.shop_percent is not None:  # only then is there a pick to name (and a read to make)
        with read_session() as s:
            shops = percent_candidates(s, state)
    lines += state.scope_lines(shops)
    lines.append(f"last change: {state.changed_by} at {state.changed_at:%Y-%m-%d %H:%M:%S} UTC: {state.reason}")
    return "\n".join(lines)


def status(args: argparse.Namespace) -> int:
    with read_session() as s:
        state, live, off = as_workers_see_it(s)
    emit({**state.as_dict(), "workers_live": live, "workers_env_off": off}, as_json=args.json,
         text=describe(state, workers_switch_line(live, off)))
    return 0


def kill(args: argparse.Namespace) -> int:
    with read_session() as s:
        was_off = get_activation_state(s).mode == "off"
    state = controls.engage_kill_switch(actor=actor_from_args(args), reason=args.reason, uow=UnitOfWork(get_engine()))
    if was_off and state.mode == "off":  # nothing changed and nothing was audited: say so, not only the old line
        print("The kill switch was already engaged; nothing changed.")
    print(describe(state))
    return 0


def activate(args: argparse.Namespace) -> int:
    if args.mode != "limited" and (args.shops or args.agent_types or args.percent is not None):
        raise UserInputError("--shops, --agent-types and --percent apply to --mode limited only; nothing changed.")
    state = controls.set_activation(actor=actor_from_args(args), mode=args.mode, reason=args.reason,
                                    uow=UnitOfWork(get_engine()), shops=args.shops, agent_types=args.agent_types,
                                    shop_percent=args.percent)
    print(describe(state))
    return 0


def agent_type(args: argparse.Namespace) -> int:
    state = controls.set_agent_type_enabled(actor=actor_from_args(args), agent_type=args.agent_type,
                                            enabled=args.enabled, reason=args.reason, uow=UnitOfWork(get_engine()))
    print(describe(state))
    return 0
