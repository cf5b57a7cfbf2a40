"""The console's HTTP side: sign in, sign out, and one handler per page, each rendering a
template with a strict Content-Security-Policy. Every request is one audited call (the audit
middleware wraps these routes like any other): the route, the client, the token's hash and the
decision are recorded for each page view."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.api.common import services
from gateway.api.context import AuditContext
from gateway.audit.query import LogNotVerified, VerifiedLog, load_verified
from gateway.auth.tokens import Principal, token_sha256
from gateway.console import pages
from gateway.console.session import (
    CONSOLE_SCOPES,
    COOKIE,
    CrossSite,
    clear_session,
    console_context,
    issue_token,
    principal_of,
    same_origin,
    set_session,
    sign_in_form,
)
from gateway.errors import ApiError, Unauthorized
from gateway.model.decision import Verdict
from gateway.policy.check import CST
from gateway.runtime.reloader import PolicyReloader
from gateway.runtime.services import Services
from gateway.web.templating import content_security_policy, environment, load_style

Builder = Callable[[Services, PolicyReloader, Callable[[], VerifiedLog]], dict[str, Any]]
NAV = (
    ("status", "/console", "Status"),
    ("clients", "/console/clients", "Clients"),
    ("grants", "/console/grants", "Grants"),
    ("usage", "/console/usage", "Usage"),
    ("refusals", "/console/refusals", "Refusals"),
    ("policy", "/console/policy", "Policy history"),
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _verified(svc: Services) -> VerifiedLog:
    """The live log, verified against the workspace's audit keys (current and rotated)."""
    ws = svc.settings.workspace
    return load_verified(
        svc.settings.audit_database, ws.audit_public_keys, policy_sets=ws.policy_sets
    )


BUILDERS: dict[str, Builder] = {
    "status": lambda svc, rl, log: pages.status_page(svc, rl.status, log()),
    "clients": lambda svc, rl, log: pages.clients_page(svc, log(), _now_ms()),
    "grants": lambda svc, rl, log: pages.grants_page(svc),
    "usage": lambda svc, rl, log: pages.usage_page(log(), _now_ms()),
    "refusals": lambda svc, rl, log: pages.refusals_page(log()),
    "policy": lambda svc, rl, log: pages.policy_page(svc, rl.status, log()),
}


class Console:
    """The console's routes, with the template environment and stylesheet they share."""

    def __init__(self) -> None:
        self.env = environment()
        self.style = load_style()
        self.headers = {
            "Content-Security-Policy": content_security_policy(self.style, forms=True),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
        }

    def routes(self) -> list[Route]:
        found = [
            Route("/console/sign-in", self.sign_in_page, methods=["GET"]),
            Route("/console/sign-in", self.sign_in, methods=["POST"]),
            Route("/console/sign-out", self.sign_out, methods=["POST"]),
        ]
        for name, path, _ in NAV:
            found.append(Route(path, self._page(name, path), methods=["GET"]))
        for route in found:
            # HEAD would run a page's handler (and be audited as a page view) for no body.
            (route.methods or set()).discard("HEAD")
        return found

    def render(self, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        body = self.env.get_template(template).render(
            css=self.style.css,
            nav=NAV,
            local=_local,
            **context,
        )
        return HTMLResponse(body, status_code=status, headers=self.headers)

    # --- sign in and out ----------------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        ctx = console_context(request, "/console/sign-in")
        ctx.decision = Verdict.NONE
        return self.render("console/sign_in.html.j2", {"error": None, "user": None})

    async def sign_in(self, request: Request) -> Response:
        ctx = console_context(request, "/console/sign-in")
        ctx.decision = Verdict.DENY
        try:
            client_id, secret = await sign_in_form(request)
        except ApiError as exc:
            return self._refused(ctx, exc)
        outcome = await issue_token(request, client_id, secret)
        ctx.client = outcome.client_id
        if outcome.status != 200:
            ctx.reason = outcome.reason
            throttled = outcome.status == 429
            message = (
                "Too many failed sign-ins; wait a while and try again."
                if throttled
                else "The client id or secret is not right, or the client is disabled."
            )
            refused = self.render(
                "console/sign_in.html.j2",
                {"error": message, "user": None},
                status=429 if throttled else 401,
            )
            if throttled:  # when to try again, as the token endpoint says it
                refused.headers.update({k: v for k, v in outcome.headers if k == "Retry-After"})
            return refused
        token = str(outcome.body["access_token"])
        ctx.token_sha256 = token_sha256(token)
        svc = services(request)
        principal = svc.tokens.validate(token)
        if not principal.scopes & CONSOLE_SCOPES:
            # The token is of no use here and was never handed out: revoke it at once.
            svc.registry.revoke(principal.jti, principal.client_id, principal.expires)
            ctx.reason = "scope_missing"
            message = "This client has neither the admin nor the audit:read scope."
            return self.render(
                "console/sign_in.html.j2", {"error": message, "user": None}, status=403
            )
        ctx.decision, ctx.reason = Verdict.ALLOW, "signed_in"
        response = RedirectResponse("/console", status_code=303, headers=self.headers)
        set_session(response, token, max(1, principal.expires - int(time.time())))
        return response

    async def sign_out(self, request: Request) -> Response:
        ctx = console_context(request, "/console/sign-out")
        ctx.decision = Verdict.DENY
        if not same_origin(request):
            return self._refused(ctx, CrossSite("sign out from the console's own pages"))
        response = RedirectResponse("/console/sign-in", status_code=303, headers=self.headers)
        clear_session(response)
        token = request.cookies.get(COOKIE)
        if token:
            ctx.token_sha256 = token_sha256(token)
            svc = services(request)
            try:
                principal = svc.tokens.validate(token, check_revoked=False)
            except Unauthorized:
                ctx.decision, ctx.reason = Verdict.NONE, "signed_out"
                return response
            svc.registry.revoke(principal.jti, principal.client_id, principal.expires)
            ctx.client = principal.client_id
        ctx.decision, ctx.reason = Verdict.ALLOW, "signed_out"
        return response

    # --- pages --------------------------------------------------------------------------------

    def _page(self, name: str, path: str) -> Callable[[Request], Any]:
        build = BUILDERS[name]

        async def page(request: Request) -> Response:
            ctx = console_context(request, path)
            ctx.decision = Verdict.DENY
            try:
                principal = principal_of(request, ctx)
            except Unauthorized as exc:
                ctx.reason = exc.reason
                response = self.render(
                    "console/sign_in.html.j2",
                    {
                        "error": "Sign in to see this page."
                        if COOKIE not in request.cookies
                        else "Your session has ended; sign in again.",
                        "user": None,
                    },
                    status=401,
                )
                if COOKIE in request.cookies:
                    clear_session(response)
                return response
            except ApiError as exc:
                return self._refused(ctx, exc)
            svc = services(request)
            reloader = request.app.state.reloader
            assert isinstance(reloader, PolicyReloader)  # noqa: S101 - set by create_app
            try:
                svc.inflight.acquire(principal.client_id)
            except ApiError as exc:
                return self._refused(ctx, exc)
            ctx.on_finish.append(lambda: svc.inflight.release(principal.client_id))
            try:
                context = await anyio.to_thread.run_sync(
                    lambda: build(svc, reloader, lambda: _verified(svc))
                )
            except LogNotVerified as exc:
                # Figures are never drawn from a log that does not verify; say so plainly.
                ctx.reason = "log_not_verified"
                error = LogUnverified(f"the audit log does not verify: {exc.problem}")
                return self._refused(ctx, error)
            ctx.decision, ctx.reason = Verdict.ALLOW, None
            return self.render(
                f"console/{name}.html.j2", {**context, "here": name, "user": _user(principal)}
            )

        return page

    def _refused(self, ctx: AuditContext, error: ApiError) -> Response:
        ctx.decision = Verdict.ERROR if error.status >= 500 else Verdict.DENY
        ctx.reason = ctx.reason or error.reason
        response = self.render(
            "console/error.html.j2",
            {"status": error.status, "title": error.title, "detail": error.detail, "user": None},
            status=error.status,
        )
        response.headers.update(error.headers)
        return response


class LogUnverified(ApiError):
    status = 500
    slug = "log-not-verified"
    title = "The audit log does not verify"
    reason = "log_not_verified"


def _user(principal: Principal) -> dict[str, Any]:
    return {
        "client": principal.client_id,
        "scopes": sorted(principal.scopes & CONSOLE_SCOPES),
        "expires": principal.expires * 1000,
    }


def _local(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d %H:%M:%S")


def console_routes() -> list[Route]:
    """The console's routes, to mount in the app beside the API's."""
    return Console().routes()
