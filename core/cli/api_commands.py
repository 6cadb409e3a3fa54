"""`api` (serve the agent API) and `tokens create | list | revoke`."""
from __future__ import annotations

import argparse

from core.cli.common import actor_from_args, row_id, whole
from core.config import get_settings
from core.db import get_engine
from core.errors import UserInputError
from core.services import tokens
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("api", help="serve the agent API (health, status, activation)")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=whole(1, 65_535), default=8000)
    a.add_argument("--workers", type=whole(1, 64), default=1, help="uvicorn worker processes")
    a.set_defaults(func=serve)
    t = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="tokens_command", required=True)
    c = t.add_parser("create", help="issue a token for a user (printed once)")
    c.add_argument("--user", required=True)
    c.add_argument("--name", default="")
    c.add_argument("--expires-days", type=int, default=90)
    c.set_defaults(func=create)
    t.add_parser("list", help="list tokens (never the tokens themselves)").set_defaults(func=list_tokens)
    r = t.add_parser("revoke", help="revoke a token by id")
    r.add_argument("token_id", type=row_id)
    r.set_defaults(func=revoke)


def _check_address(host: str, port: int) -> None:
    """Refuse a taken port or an unknown host in one sentence, before the banner says the API is up (uvicorn would
    log its own error and exit 3, which here means a refused permission)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UserInputError(f"--host {host!r} is not an address of this machine.") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserInputError(f"Cannot listen on {host}:{port} ({exc.strerror}); check --host and --port.") from None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    _check_address(args.host, args.port)
    docs = " (docs at /docs)" if get_settings().docs_served() else ""  # it pointed at a 404 outside development
    print(f"agent API on http://{args.host}:{args.port}{docs}", flush=True)
    uvicorn.run("core.cli.api_commands:create_reporting_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", proxy_headers=False)
    return 0


def create_reporting_app():  # noqa: ANN201 - a FastAPI app, imported late so `--help` stays fast
    """The factory uvicorn calls in each of its processes: Sentry first (component api), then the app."""
    from core.api.app import create_app
    from core.config import get_settings
    from core.sentry import init_sentry

    init_sentry(get_settings(), component="api")
    return create_app()


def create(args: argparse.Namespace) -> int:
    new = tokens.create_token(actor=actor_from_args(args), username=args.user, name=args.name,
                              expires_days=args.expires_days, uow=UnitOfWork(get_engine()))
    print(new.token)
    print(f"token {new.id} for {new.username}, expires {new.expires_at or 'never'}; it is shown only this once.",
          flush=True)
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    for t in tokens.list_tokens(actor=actor_from_args(args), uow=UnitOfWork(get_engine())):
        print(f"{t['id']:>4}  {t['user']:16} {t['prefix']:16} {t['state']:8} expires {t['expires_at'] or 'never'}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    revoked = tokens.revoke_token(actor=actor_from_args(args), token_id=args.token_id, uow=UnitOfWork(get_engine()))
    print(f"token {args.token_id} revoked" if revoked else f"token {args.token_id} was revoked already")
    return 0
