"""The dashboard's ASGI app (Starlette): pages, JSON endpoints, the live event stream.

Every page and endpoint but sign-in needs a session (:mod:`.auth`). Rights are enforced
here, in the JSON endpoints, not in the page: a private series, a document or a report of a
twin is answered only when the chain lets the session's account read that twin. State
changes (sign-in, sign-out, actions) are POSTs that need the session's CSRF token in
``X-CSRF-Token`` and a same-origin ``Origin``; the cookie is SameSite=Strict besides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from twinchain.client import ClientError, NodeUnavailable
from twinchain.dashboard import views
from twinchain.dashboard.actions import ActionError, Actions
from twinchain.dashboard.auth import COOKIE, Session, Sessions, SignInError
from twinchain.dashboard.chain import ChainView, Forbidden, NotFound
from twinchain.dashboard.downsample import DownsampleError, reduce
from twinchain.primitives.types import extrinsic_hash
from twinchain.protocol.jsonrpc import RpcError, from_hex
from twinchain.protocol.jsonrpc import to_hex as hx

log = logging.getLogger("twinchain.dashboard")

PAGES = {
    "overview": "Plant overview",
    "machine": "Machine",
    "alarms": "Alarms",
    "orders": "Work orders",
    "reports": "Reports",
    "network": "Network",
    "login": "Sign in",
}
MAX_BODY = 64 * 1024
#: Action kinds the page may ask for: (pallet, call, argument builder, description).
ACTIONS: dict[str, tuple[str, str]] = {
    "acknowledge": ("Maintenance", "acknowledge_alert"),
    "assign": ("Maintenance", "assign_alert"),
    "comment": ("Maintenance", "comment_alert"),
    "create_order": ("Maintenance", "create_from_alert"),
}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _int(value: str | None, what: str, lo: int = 0, hi: int = 2**63 - 1) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise HttpError(400, "bad-request", f"{what} must be an integer") from None
    if not lo <= n <= hi:
        raise HttpError(400, "bad-request", f"{what} must be within {lo}..{hi}")
    return n


def page_html(
    page: str, title: str, session: Session | None, csrf: str, facility: int | None
) -> str:
    who = "" if session is None else session.address
    fac = "" if facility is None else str(facility)
    nav = "".join(
        f'<a href="{href}" data-nav="{key}">{label}</a>'
        for key, href, label in (
            ("overview", "/", "Overview"),
            ("alarms", "/alarms", "Alarms"),
            ("orders", "/orders", "Work orders"),
            ("reports", "/reports", "Reports"),
            ("network", "/network", "Network"),
        )
    )
    head = (
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf" content="{csrf}"><link rel="icon" href="data:,">'
        f"<title>{title} · twinchain</title>"
        '<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">'
        '<link rel="stylesheet" href="/static/app.css">'
        '<link rel="stylesheet" href="/static/print.css" media="print">'
    )
    user = (
        ""
        if session is None
        else '<span class="who" title="signed-in account">signed in as '
        f'<code id="who">{who}</code></span>'
        '<button id="logout" class="ghost">Sign out</button>'
    )
    return (
        f"<!doctype html><html lang='en'><head>{head}</head>"
        f'<body data-page="{page}" data-facility="{fac}">'
        f'<header><strong class="brand">twinchain</strong><nav>{nav if session else ""}</nav>'
        f'<span id="live" class="live" role="status">connecting…</span>{user}</header>'
        '<main id="main" aria-live="polite"></main>'
        '<script src="/static/vendor/uplot/uPlot.iife.min.js"></script>'
        '<script type="module" src="/static/app.js"></script></body></html>'
    )


class Dashboard:
    """The app's state: the chain view, sessions, pending actions."""

    def __init__(
        self, view: ChainView, *, origin: str, api_keys: Any = None, facility: int | None = None
    ) -> None:
        self.view = view
        self.origin = origin
        self.facility = facility
        self.api_keys = api_keys
        self.sessions: Sessions | None = None
        self.actions = Actions()
        self._latest_cache: dict[tuple[Any, ...], Any] = {}
        self.app = Starlette(routes=self.routes(), lifespan=self.lifespan, exception_handlers={})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- life
    def lifespan(self, app: Starlette) -> Any:
        dash = self

        class Life:
            async def __aenter__(self) -> None:
                await dash.view.start()
                assert dash.view.genesis is not None
                dash.sessions = Sessions(dash.origin, dash.view.genesis, dash.api_keys)

            async def __aexit__(self, *exc: object) -> None:
                await dash.view.stop()

        return Life()

    # -- plumbing
    def routes(self) -> list[Any]:
        static = resources.files("twinchain.dashboard") / "static"
        r = Route
        return [
            r("/", self.page("overview")),
            r("/machine/{twin:int}", self.page("machine")),
            r("/alarms", self.page("alarms")),
            r("/orders", self.page("orders")),
            r("/reports", self.page("reports")),
            r("/network", self.page("network")),
            r("/login", self.login_page),
            r("/login/link/{token}", self.login_link),
            r("/api/login/challenge", self.api(self.challenge, auth=False)),
            r("/api/login", self.api(self.login, auth=False), methods=["POST"]),
            r("/api/login/link", self.api(self.login_link_api, auth=False), methods=["POST"]),
            r("/api/logout", self.api(self.logout), methods=["POST"]),
            r("/api/session", self.api(self.session_info)),
            r("/api/overview", self.api(self.overview)),
            r("/api/machines/{twin:int}", self.api(self.machine)),
            r("/api/machines/{twin:int}/series", self.api(self.series)),
            r("/api/machines/{twin:int}/documents/{digest}", self.api(self.document)),
            r("/api/alarms", self.api(self.alarms)),
            r("/api/orders", self.api(self.orders)),
            r("/api/reports", self.api(self.reports)),
            r("/api/reports.csv", self.api(self.reports_csv)),
            r("/api/network", self.api(self.network)),
            r("/api/events", self.events),
            r("/api/actions", self.api(self.prepare), methods=["POST"]),
            r("/api/actions/{action}/submit", self.api(self.submit), methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ]

    def session(self, request: Request) -> Session | None:
        return None if self.sessions is None else self.sessions.get(request.cookies.get(COOKIE))

    def page(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            s = self.session(request)
            if s is None:
                return RedirectResponse("/login", status_code=303)
            html = page_html(name, PAGES[name], s, s.csrf, self.facility)
            return HTMLResponse(html, headers=_security_headers())

        return handler

    async def login_page(self, request: Request) -> Response:
        return HTMLResponse(
            page_html("login", "Sign in", None, "", self.facility), headers=_security_headers()
        )

    async def login_link(self, request: Request) -> Response:
        assert self.sessions is not None
        try:
            s = self.sessions.redeem(request.path_params["token"])
        except SignInError as exc:
            return PlainTextResponse(str(exc), status_code=401)
        resp = RedirectResponse("/", status_code=303)
        self._set_cookie(resp, s)
        return resp

    def _set_cookie(self, resp: Response, s: Session) -> None:
        resp.set_cookie(
            COOKIE,
            s.token,
            max_age=max(1, (s.expires_ms - int(time.time() * 1000)) // 1000),
            httponly=True,
            samesite="strict",
            secure=self.origin.startswith("https://"),
            path="/",
        )

    def api(
        self, fn: Callable[..., Awaitable[Any]], *, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            s = self.session(request)
            try:
                if request.method == "POST":
                    self._check_post(request, s if auth else None)
                if auth and s is None:
                    raise HttpError(401, "unauthorized", "sign in first")
                result = await fn(request, s) if auth else await fn(request)
            except HttpError as exc:
                return error(exc.status, exc.code, exc.message)
            except SignInError as exc:
                return error(401, exc.reason, str(exc))
            except Forbidden as exc:
                return error(403, "forbidden", str(exc))
            except NotFound as exc:
                return error(404, "not-found", str(exc))
            except (ActionError, DownsampleError) as exc:
                return error(400, "bad-request", str(exc))
            except NodeUnavailable as exc:
                return error(503, "node-unavailable", str(exc))
            except RpcError as exc:
                return error(502, "node-error", f"{exc.message} ({exc.code})")
            except ClientError as exc:
                return error(502, "node-error", str(exc))
            if isinstance(result, Response):
                return result
            return JSONResponse(result, headers={"Cache-Control": "no-store"})

        return handler

    def _check_post(self, request: Request, s: Session | None) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin != self.origin and origin != _own_origin(request):
            raise HttpError(403, "csrf", "cross-origin request refused")
        if s is not None and request.headers.get("x-csrf-token") != s.csrf:
            raise HttpError(403, "csrf", "missing or wrong X-CSRF-Token")

    async def body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise HttpError(413, "too-large", f"request body above {MAX_BODY} bytes")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise HttpError(400, "bad-request", "body must be JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "bad-request", "body must be a JSON object")
        return data

    # -- sign-in
    async def challenge(self, request: Request) -> Any:
        assert self.sessions is not None
        return self.sessions.challenge()

    async def login(self, request: Request) -> Response:
        assert self.sessions is not None
        data = await self.body(request)
        if "apiKey" in data:
            s = self.sessions.sign_in_api_key(data["apiKey"])
        else:
            s = self.sessions.open(
                self.sessions.verify(data.get("challenge"), data.get("auth")), "key"
            )
        log.info("signed in: %s (%s)", s.address, s.method)
        resp = JSONResponse(s.to_json())
        self._set_cookie(resp, s)
        return resp

    async def login_link_api(self, request: Request) -> Any:
        assert self.sessions is not None
        data = await self.body(request)
        account = self.sessions.verify(data.get("challenge"), data.get("auth"))
        return {"link": f"{self.origin}/login/link/{self.sessions.link(account)}"}

    async def logout(self, request: Request, s: Session) -> Response:
        assert self.sessions is not None
        self.sessions.close(s.token)
        resp = JSONResponse({"signedOut": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def session_info(self, request: Request, s: Session) -> Any:
        return {**s.to_json(), "csrf": s.csrf, "facility": self.facility}

    # -- reads
    def _facility(self, request: Request) -> int | None:
        q = request.query_params.get("facility")
        if q == "all":
            return None
        f = _int(q, "facility", 0, 2**32 - 1)
        return self.facility if f is None else f

    async def overview(self, request: Request, s: Session) -> Any:
        return await views.overview(self.view, self._facility(request))

    async def machine(self, request: Request, s: Session) -> Any:
        tid = request.path_params["twin"]
        out = await views.machine(self.view, tid, s.account)
        if out["mayReadPrivate"] or s.api_key is not None:
            try:
                out["facilityReports"] = await views.facility_reports(self.view, tid, s.api_key)
            except Forbidden:
                out["facilityReports"] = []
        return out

    async def series(self, request: Request, s: Session) -> Any:
        """A metric of a twin over ``[from, to]`` (ms), downsampled for ``width`` pixels:
        ``source=raw`` (the archive's readings; private metrics only when the chain lets the
        account read the twin) or ``windows`` (the chain's public window aggregates)."""
        tid = request.path_params["twin"]
        q = request.query_params
        metric_q = q.get("metric")
        if not metric_q:
            raise HttpError(400, "bad-request", "metric is required (a name or id)")
        metric = self.view.metric_id(metric_q)
        now = int(time.time() * 1000)
        hi = _int(q.get("to"), "to") or now
        lo = _int(q.get("from"), "from")
        lo = hi - 3600_000 if lo is None else lo
        if lo > hi:
            raise HttpError(400, "bad-request", "from must not be after to")
        width = _int(q.get("width"), "width", 1, 8000) or 1000
        method = q.get("method", "minmax")
        source = q.get("source", "raw")
        t = await self.view.at_head("twin_equipment", tid)
        if t is None:
            raise NotFound(f"no twin {tid}")
        public = metric in await self.view.public_metrics(tid)
        scale = int(self.view.metrics.get(metric, {}).get("scale", 0))
        if source == "windows":
            if not public:
                raise Forbidden("a private metric has no public window aggregates")
            rows = await self.view.at_head("twin_telemetryAggregates", tid, metric)
            pts = [
                (r["windowStart"], r.get("sum", 0) / max(1, r.get("count", 1)))
                for r in rows
                if lo <= r["windowStart"] <= hi
            ]
            import numpy as np

            ts = np.array([p[0] for p in pts], dtype=np.float64)
            vs = np.array([p[1] for p in pts], dtype=np.float64)
            origin = "chain window aggregates (public)"
            total = len(pts)
        elif source == "raw":
            # Raw readings, public metric or private, are the archive's: the chain's right
            # to read the twin decides (an API-key session is checked again by the archive).
            if not await self.view.may_read(tid, s.account, metric):
                what = "its public window aggregates are source=windows" if public else "private"
                raise Forbidden(
                    f"the chain does not let {s.address} read twin {tid}'s raw {metric_q} "
                    f"readings ({what})"
                )
            ts, vs, origin = await self.view.raw_series(tid, metric, lo, hi, api_key=s.api_key)
            total = len(ts)
        else:
            raise HttpError(400, "bad-request", "source must be raw or windows")
        if total:
            ts, vs = reduce(ts, vs, width, method)
        div = 10.0**scale
        return {
            "twin": tid,
            "metric": metric,
            "from": lo,
            "to": hi,
            "source": origin,
            "total": total,
            "points": len(ts),
            "t": [x / 1000 for x in ts.tolist()],
            "v": [x / div for x in vs.tolist()],
        }

    async def document(self, request: Request, s: Session) -> Response:
        tid = request.path_params["twin"]
        digest_hex = request.path_params["digest"]
        try:
            digest = bytes.fromhex(digest_hex.removeprefix("0x"))
        except ValueError:
            raise HttpError(400, "bad-request", "digest must be hex") from None
        if len(digest) != 32:
            raise HttpError(400, "bad-request", "digest must be 32 bytes")
        if s.api_key is None and not await self.view.may_read(tid, s.account):
            raise Forbidden(f"the chain does not let {s.address} read twin {tid}'s documents")
        t = await self.view.at_head("twin_equipment", tid)
        listed = {d.get("hash") for d in (t or {}).get("documents") or []}
        if "0x" + digest.hex() not in listed:
            raise NotFound(f"twin {tid} lists no document 0x{digest.hex()}")
        content = await self.view.document(tid, digest, api_key=s.api_key)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{digest.hex()[:16]}.bin"'},
        )

    async def alarms(self, request: Request, s: Session) -> Any:
        state = request.query_params.get("state") or None
        if state not in (None, views.UNACKED, views.ACKED, views.CLEARED):
            raise HttpError(400, "bad-request", "state must be one of the alarm states")
        return await views.alarms(self.view, state, self._facility(request))

    async def orders(self, request: Request, s: Session) -> Any:
        return await views.orders(self.view, self._facility(request))

    async def reports(self, request: Request, s: Session) -> Any:
        return await views.report(self.view, self._facility(request))

    async def reports_csv(self, request: Request, s: Session) -> Response:
        rep = await views.report(self.view, self._facility(request))
        return PlainTextResponse(
            views.report_csv(rep),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="kpi-report.csv"'},
        )

    async def network(self, request: Request, s: Session) -> Any:
        return await views.network(self.view)

    # -- live
    async def events(self, request: Request) -> Response:
        """Server-sent events: a ``head`` event on each finalized block, with the twin's new
        public readings (``?twin=N``) since the last one."""
        s = self.session(request)
        if s is None:
            return error(401, "unauthorized", "sign in first")
        twin = _int(request.query_params.get("twin"), "twin")

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n\n"
            last_seen: dict[int, int] = {}
            async with self.view.hub.listen() as q:
                while True:
                    try:
                        head = await asyncio.wait_for(q.get(), 15)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    data: dict[str, Any] = {
                        "number": head.number,
                        "hash": head.hash,
                        "seenAt": head.at_ms,
                    }
                    if twin is not None:
                        try:
                            data["readings"] = await self._latest(twin, last_seen)
                        except (RpcError, NodeUnavailable, ClientError) as exc:
                            data["error"] = str(exc)
                    yield f"event: head\ndata: {json.dumps(data)}\n\n".encode()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _latest(self, twin: int, last_seen: dict[int, int]) -> list[dict[str, Any]]:
        """The latest public reading per metric of the twin that this finalized block holds
        and the stream has not sent yet: each window aggregate keeps its latest reading
        (``last``, ``lastTs``), merged from the summaries the devices signed."""
        head = self.view.head
        if head is None:
            return []
        since = int(time.time() * 1000) - 30_000
        key = ("latest", twin, head.hash)
        rows = self._latest_cache.get(key)
        if rows is None:
            rows = await self.view.call("twin_telemetryAggregates", twin, None, head.hash, since)
            self._latest_cache = {key: rows}  # one read per head, shared by every stream
        newest: dict[int, tuple[int, int]] = {}
        for r in rows:
            m, ts, val = r.get("metric"), r.get("lastTs"), r.get("last")
            if m is None or ts is None or val is None:
                continue
            if ts > last_seen.get(m, -1) and ts > newest.get(m, (-1, 0))[0]:
                newest[m] = (ts, val)
        out = []
        for m, (ts, val) in sorted(newest.items()):
            last_seen[m] = ts
            scale = int(self.view.metrics.get(m, {}).get("scale", 0))
            out.append({"metric": m, "t": ts / 1000, "v": val / 10.0**scale})
        return out

    # -- actions
    async def prepare(self, request: Request, s: Session) -> Any:
        data = await self.body(request)
        kind = data.get("kind")
        if kind not in ACTIONS:
            raise HttpError(400, "bad-request", f"kind must be one of {sorted(ACTIONS)}")
        pallet, call_name = ACTIONS[kind]
        alert = _int(str(data.get("alert", "")), "alert")
        if alert is None:
            raise HttpError(400, "bad-request", "alert is required")
        client = self.view.rpc.client
        if client is None:
            raise NodeUnavailable("not connected to the node")
        args: dict[str, Any] = {"alert": alert}
        if kind == "assign":
            from twinchain.primitives.keys import parse_account

            who = str(data.get("account", "")).strip()
            try:
                args["assignee"] = parse_account(who) if who else None
            except ValueError:
                raise HttpError(
                    400, "bad-request", "account must be an address or 0x key"
                ) from None
            desc = f"Assign alarm {alert} to {who}" if who else f"Unassign alarm {alert}"
        elif kind == "comment":
            text = str(data.get("text", ""))
            if not text or len(text.encode()) > 256:
                raise HttpError(400, "bad-request", "a comment is 1 to 256 bytes of text")
            args["text"] = text
            desc = f"Comment on alarm {alert}: {text!r}"
        elif kind == "create_order":
            from twinchain.primitives.hashing import blake3_hash

            note = str(data.get("description", f"corrective work for alarm {alert}"))[:256]
            args |= {
                "description": blake3_hash(note.encode()),
                "payment": _int(str(data.get("payment", 0)), "payment", 0, 2**127) or 0,
                "verification": str(data.get("verification", "Telemetry")),
            }
            desc = f"Create a work order from alarm {alert} ({note!r}, escrow {args['payment']})"
        else:
            desc = f"Acknowledge alarm {alert}"
        try:
            call = client.call_function(pallet, call_name, **args)
        except ClientError as exc:
            raise HttpError(
                400, "unsupported", f"this chain cannot {kind.replace('_', ' ')}: {exc}"
            ) from None
        nonce = await client.call("system_accountNextIndex", hx(s.account))
        info = client.info
        p = self.actions.add(
            s.token, s.account, call, int(nonce), info.genesis_hash, info.signing_version, desc
        )
        req = p.request()
        return {
            "action": p.id,
            "description": desc,
            "request": req,
            "command": "twinchain dashboard sign --key YOUR_KEY_FILE",
        }

    async def submit(self, request: Request, s: Session) -> Any:
        data = await self.body(request)
        xt = self.actions.take(request.path_params["action"], s.token, data.get("signature"))
        client = self.view.rpc.client
        if client is None:
            raise NodeUnavailable("not connected to the node")
        statuses: list[str] = []
        block: bytes | None = None
        try:
            async with client.submit_and_watch(xt) as sub:
                async for st in sub:
                    statuses.append(st.kind)
                    block = st.block or block
        except RpcError as exc:
            raise HttpError(
                409, "refused", f"the node refused the extrinsic: {exc.message}"
            ) from None
        result: dict[str, Any] = {"extrinsic": "0x" + xt.hash.hex(), "statuses": statuses}
        if not statuses or statuses[-1] != "finalized" or block is None:
            raise HttpError(409, "not-finalized", f"the extrinsic ended {statuses[-1:]}")
        data = await client.call("chain_getBlock", hx(block))
        raws = [from_hex(x, "extrinsic") for x in data["block"]["extrinsics"]]
        index = next(i for i, r in enumerate(raws) if extrinsic_hash(r) == xt.hash)
        events = [e for e in await client.events(block) if e["extrinsic"] == index]
        for e in events:
            if e["event"] == "ExtrinsicFailed":
                err = e["args"]
                raise HttpError(
                    409, "failed", f"failed on chain: {err.get('module')}.{err.get('error')}"
                )
        result["block"] = hx(block)
        result["events"] = [
            f"{e['pallet']}.{e['event']}" for e in events if e["pallet"] != "System"
        ]
        log.info("action by %s finalized in %s", s.address, hx(block))
        return result


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def _security_headers() -> dict[str, str]:
    return {
        # uPlot sizes its elements with inline styles; scripts only from this origin.
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


__all__ = ["Dashboard", "page_html"]
