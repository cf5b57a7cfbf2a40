"""`gateway init` and `gateway serve`."""

from __future__ import annotations

import argparse
import functools
import logging
import logging.config
import os
from collections.abc import Callable
from typing import Any

from gateway.cli.common import Subparsers, print_err, print_out, settings_of
from gateway.errors import ConfigError

GRACEFUL_SECONDS = 10  # in-flight calls finish (and are logged); idle keep-alives are dropped


def cmd_init(args: argparse.Namespace) -> int:
    # (imported here, as in cmd_serve: `gateway --help` and the other commands need none of it)
    from gateway.workspace import init_workspace

    settings = settings_of(args)
    report = init_workspace(settings, demo=args.demo, rows=args.rows, seed=args.seed)
    print_out(f"workspace: {settings.home}")
    for item in report.created:
        print_out(f"  created  {item}")
    for item in report.kept:
        print_out(f"  kept     {item} (already present)")
    for note in report.notes:
        print_out(f"  note     {note}")
    if args.demo:
        print_out(
            f"next: `gateway serve --home {settings.home}`, then see README.md for the walk-through"
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.api.protocol import KEEP_ALIVE_SECONDS, MAX_HEAD_BYTES
    from gateway.app import create_app
    from gateway.logs import LOG_CONFIG
    from gateway.policy.files import load_policies
    from gateway.workspace import exposure_warning

    settings = settings_of(args)
    ws = settings.workspace
    load_policies(ws.policies, ws.home)  # fail fast, in the parent, with file:line messages
    exposure = exposure_warning(ws)
    if exposure:
        logging.config.dictConfig(LOG_CONFIG)  # the server's own log (stderr), set up early
        logging.getLogger("gateway.workspace").warning(exposure)
    certfile: str | None = None
    keyfile: str | None = None
    if settings.insecure_http:
        print_err(
            "WARNING: serving plain HTTP (--insecure-http). Tokens and data cross the network "
            "unencrypted; only do this behind a TLS-terminating proxy on the same host."
        )
    else:
        for path in (ws.server_cert, ws.server_key):
            if not path.is_file():
                raise ConfigError(
                    f"TLS file {path} is missing; run `gateway init` or pass --insecure-http"
                )
        certfile, keyfile = str(ws.server_cert), str(ws.server_key)
    print_out(
        f"serving {settings.base_url} (workspace {settings.home}, {settings.workers} worker(s))"
    )
    store = settings.audit_database.display if settings.store else "SQLite in the workspace"
    print_out(f"store: {store}")
    if not settings.insecure_http:
        print_out(f"clients trust the CA in {ws.ca_cert}")
    # No access log: request lines can carry personal values; the audit log is the record.
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_config": LOG_CONFIG,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        # Hostile connections (docs/security.md): requests the parser refuses are audited, a
        # request must arrive whole within settings.request_seconds, idle connections close.
        "http": http_protocol(settings.request_seconds),
        "ws": "none",  # no WebSocket upgrades: a WebSocket scope would bypass the audit log
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
    if settings.workers > 1:
        # Worker processes rebuild the same settings from the environment.
        os.environ.update(settings.to_env())
        uvicorn.run("gateway.app:app_from_env", factory=True, workers=settings.workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
    return 0


def http_protocol(request_seconds: float) -> Callable[..., Any]:
    """The HTTP/1.1 protocol `gateway serve` runs: httptools (llhttp, C) where it is installed,
    h11 (pure Python) otherwise; both audit the requests their parser refuses and close a
    request that has not arrived whole within `request_seconds`. With uvloop (uvicorn's "auto"
    loop picks it up) httptools costs about 80 us less CPU per call (docs/performance.md).
    A partial of the class, which uvicorn calls as it would the class (and pickles for its
    worker processes)."""
    protocol: type[Any]
    try:
        from gateway.api.protocol_fast import GatewayHttpToolsProtocol

        protocol = GatewayHttpToolsProtocol
    except ImportError:  # httptools is a dependency, but a platform may lack its wheel
        from gateway.api.protocol import GatewayH11Protocol

        protocol = GatewayH11Protocol
    return functools.partial(protocol, request_seconds=request_seconds)


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[home], help="create keys, certificates (and a demo setup)")
    p.add_argument(
        "--demo", action="store_true", help="also write demo datasets, policies and a client"
    )
    # (defaults: gateway/data/demo.py's, applied by init_workspace)
    p.add_argument("--rows", type=int, help="rows per demo dataset")
    p.add_argument("--seed", type=int, help="seed of the demo data")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", parents=[home], help="serve the API over HTTPS")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument(
        "--insecure-http", action="store_true", help="plain HTTP, for use behind a TLS proxy"
    )
    p.set_defaults(func=cmd_serve)
