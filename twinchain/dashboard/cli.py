"""``twinchain dashboard``: serve the web dashboard of a facility's node; ``dashboard login``
(sign a challenge, print a one-time sign-in link) and ``dashboard sign`` (sign a challenge or
an action request where the key lives). Heavy imports stay inside the commands."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from twinchain.primitives.errors import CliError

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise CliError(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from twinchain.dashboard.server import serve

    if args.rpc is None:
        raise CliError("--rpc URL of the facility's node is required")
    host, port = parse_listen(args.listen)
    reader_key = None
    if args.reader_key:
        from twinchain.primitives.keystore import load_keypair

        reader_key = load_keypair(args.reader_key)
    reader_api_key = None
    if args.reader_api_key_file:
        reader_api_key = Path(args.reader_api_key_file).read_text().strip()
    try:
        asyncio.run(
            serve(
                args.rpc,
                host,
                port,
                facility=args.facility,
                archive_rpc=args.archive_rpc,
                archive_dir=args.archive_dir,
                api_keys=args.api_keys,
                reader_key=reader_key,
                reader_api_key=reader_api_key,
                public_url=args.public_url,
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise CliError(str(exc)) from None
    return 0


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            msg = str(exc)
        raise CliError(f"the dashboard refused: {msg}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach the dashboard at {url}: {exc}") from None


def login_link(url: str, key: Any) -> str:
    """Sign a fresh challenge of the dashboard at ``url`` with ``key``: a one-time link."""
    from twinchain.dashboard.auth import sign_challenge

    base = url.rstrip("/")
    try:
        with urllib.request.urlopen(base + "/api/login/challenge", timeout=15) as r:
            challenge = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"cannot reach the dashboard at {base}: {exc}") from None
    auth = sign_challenge(key, challenge)
    return str(
        _post(base + "/api/login/link", {"challenge": challenge["nonce"], "auth": auth})["link"]
    )


def cmd_login(args: argparse.Namespace) -> int:
    from twinchain.primitives.keystore import load_keypair

    link = login_link(args.url, load_keypair(args.key))
    print(link)
    if args.open:
        import webbrowser

        webbrowser.open(link)
    return 0


def sign_text(key: Any, text: str) -> str:
    """What ``dashboard sign`` prints for a pasted challenge or action request."""
    from twinchain.dashboard.actions import REQUEST_KIND, ActionError, parse_request, sign_request
    from twinchain.dashboard.auth import SignInError, sign_challenge

    try:
        obj = json.loads(text)
    except ValueError:
        raise CliError("paste the challenge or the action request (JSON)") from None
    try:
        if isinstance(obj, dict) and obj.get("kind") == REQUEST_KIND:
            req = parse_request(text)
            print(f"signing: {req.get('description')}", file=sys.stderr)
            return sign_request(key, req)
        return json.dumps(sign_challenge(key, obj))
    except (ActionError, SignInError) as exc:
        raise CliError(str(exc)) from None


def cmd_sign(args: argparse.Namespace) -> int:
    from twinchain.primitives.keystore import load_keypair

    key = load_keypair(args.key)
    text = args.request if args.request is not None else sys.stdin.read()
    print(sign_text(key, text.strip()))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    if args.dashboard_cmd == "login":
        return cmd_login(args)
    if args.dashboard_cmd == "sign":
        return cmd_sign(args)
    return cmd_serve(args)


def add_parser(sub: Any) -> None:
    """Register ``twinchain dashboard`` on the main CLI's subparsers."""
    p = sub.add_parser("dashboard", help="web dashboard of a facility's node")
    p.add_argument("--rpc", help="the facility node's JSON-RPC URL (ws:// or http://)")
    p.add_argument("--archive-rpc", help="the facility archive's node, if another one")
    p.add_argument(
        "--archive-dir", type=Path, help="the archive's folder, when it is on this machine"
    )
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--facility", type=int, help="the facility the pages show first")
    p.add_argument(
        "--api-keys", type=Path, help="the node's api-keys.json: users may sign in with its keys"
    )
    p.add_argument("--reader-key", help="the dashboard's own account for archive reads over RPC")
    p.add_argument(
        "--reader-api-key-file", help="file holding an API key for archive reads over RPC"
    )
    p.add_argument("--public-url", help="the URL browsers use (default http://LISTEN)")
    dsub = p.add_subparsers(dest="dashboard_cmd")
    lg = dsub.add_parser("login", help="sign in with your key: prints a one-time link")
    lg.add_argument("--url", required=True, help="the dashboard's URL")
    lg.add_argument("--key", required=True, help="your key (//Name, seed, key file)")
    lg.add_argument("--open", action="store_true", help="open the link in a browser")
    sg = dsub.add_parser("sign", help="sign a pasted challenge or action request")
    sg.add_argument("--key", required=True, help="your key (//Name, seed, key file)")
    sg.add_argument("request", nargs="?", help="the JSON text (default: read stdin)")
    p.set_defaults(fn=cmd_dashboard)


__all__ = ["add_parser", "login_link", "sign_text"]
