"""The dashboard against a real devnet (two facility validators with their gateways), in real
headless Chromium driven by Selenium: sign in with a key, open a machine, act on an alarm with
a signature made where the key lives, see it on chain and in a second browser session; and
the rights: a user of facility B gets none of facility A's private data, neither in the page
nor from the dashboard's endpoints. The pages' screenshots go to docs/screenshots/.

One devnet and one dashboard process for the whole module (the suite's time budget)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from realnet import wait_for

from twinchain.client import Client
from twinchain.dashboard.auth import sign_challenge
from twinchain.dashboard.cli import login_link, sign_text
from twinchain.devnet import manager
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import load_keypair

CHROMIUM = os.environ.get("TWINCHAIN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TWINCHAIN_CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BROWSER_MISSING = next(
    (
        f"{what} not found at {path} (apt-get install chromium chromium-driver; "
        "make test installs them when root)"
        for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
        if not (Path(path).exists() or shutil.which(path))
    ),
    None,
)
POWER = "power"  # private by the default disclosure policy


@dataclass
class Net:
    base: Path
    url: str
    rpc: str
    domain: dict[str, Any]
    alert: int
    dashboard: subprocess.Popen[bytes]

    def key(self, account: str) -> Keypair:
        return load_keypair(str(self.base / "keys" / f"acct-{account.removeprefix('0x')}"))

    def slug(self, i: int) -> str:
        return next(
            s for s, a in self.domain.items() if isinstance(a, dict) and a.get("facility") == i
        )


def _raise_alert(rpc: str, base: Path, domain: dict[str, Any], slug: str) -> int:
    """The facility's predictive worker raises a predicted-failure alert on twin 0 (what its
    PdM worker does once a fault shows; here at once, to keep the test short)."""
    worker = load_keypair(str(base / "keys" / f"work-{domain[slug]['worker'][2:]}"))
    with Client(rpc, timeout=30) as c:
        model = next(m for m in c.call("twin_models") if m["active"])["model"]
        call = c.call_function(
            "Maintenance",
            "submit_prediction",
            twin=0,
            probability_bp=8_200,
            horizon_ms=6 * 3600_000,
            model=bytes.fromhex(model[2:]),
            evidence=bytes(32),
        )
        _, statuses = c.sign_and_watch(call, worker, timeout=30)
        assert statuses[-1].kind == "finalized", statuses
        alerts = [a for a in c.call("twin_alerts", 0) if a["open"] and a["kind"] == "Predicted"]
        return int(alerts[-1]["id"])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    base = tmp_path_factory.mktemp("dash") / "devnet"
    nodes = manager.up(base, 2, 1000, gateways=True, workers=False)
    proc = None
    try:
        domain = json.loads((base / "domain.json").read_text())
        (plan,) = manager.plan_dashboards(base, nodes[:1])  # facility A's dashboard
        proc = manager.start_dashboard(plan)
        wait_for(lambda: _get(plan.url + "/login")[0] == 200, 30, "the dashboard to answer")
        slug = next(s for s, a in domain.items() if isinstance(a, dict) and a.get("facility") == 0)
        alert = _raise_alert(nodes[0].rpc_url, base, domain, slug)
        yield Net(base, plan.url, nodes[0].rpc_url, domain, alert, proc)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        manager.down(base)


# --------------------------------------------------------------------------- HTTP helpers


def _get(url: str, cookie: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except OSError:
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def _sign_in(url: str, key: Keypair) -> tuple[str, str]:
    """(cookie, csrf) of a session signed in over HTTP with a signed challenge."""
    _, challenge = _get(url + "/api/login/challenge")
    body = json.dumps({"challenge": challenge["nonce"], "auth": sign_challenge(key, challenge)})
    host = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.request("POST", "/api/login", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    cookie = r.getheader("Set-Cookie", "").split(";")[0]
    assert "HttpOnly" in r.getheader("Set-Cookie", "")
    assert "SameSite=strict" in r.getheader("Set-Cookie", "")
    _, info = _get(url + "/api/session", cookie)
    return cookie, info["csrf"]


def _post(url: str, path: str, body: Any, cookie: str, csrf: str | None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    headers = {"Content-Type": "application/json", "Cookie": cookie}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    conn.request("POST", path, json.dumps(body), headers)
    r = conn.getresponse()
    return r.status, json.loads(r.read())


# --------------------------------------------------------------------------- browser


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(30)
    return d


def _open(d: Any, url: str, timeout: float = 30) -> None:
    d.get(url)
    wait_for(lambda: d.execute_script("return document.body.dataset.ready") == "1", timeout,
             lambda: f"{url} to render: {d.find_element('id', 'main').text[:300]!r}")  # fmt: skip


def _shot(d: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def browsers() -> Iterator[tuple[Any, Any]]:
    if BROWSER_MISSING:
        pytest.skip(BROWSER_MISSING)
    a = _browser()
    b = _browser()
    try:
        yield a, b
    finally:
        a.quit()
        b.quit()


def _row_state(d: Any, alert: int) -> str | None:
    rows = d.find_elements("css selector", f'tr[data-alarm="{alert}"]')
    return rows[0].get_attribute("data-state") if rows else None


def _row_text(d: Any, alert: int) -> str:
    rows = d.find_elements("css selector", f'tr[data-alarm="{alert}"]')
    return rows[0].text if rows else ""


def test_sign_in_machine_and_a_signed_alarm_action_seen_on_chain_and_in_a_second_session(
    net: Net, browsers: tuple[Any, Any]
) -> None:
    first, second = browsers
    a = net.domain[net.slug(0)]
    owner, operator = net.key(a["owner"]), net.key(a["operator"])

    first.get(net.url + "/login")
    wait_for(lambda: first.find_elements("id", "challenge"), 20, "the sign-in page")
    _shot(first, "login")
    first.get(login_link(net.url, owner))  # what `twinchain dashboard login` prints
    _open(first, net.url + "/")
    wait_for(lambda: first.find_elements("css selector", 'tr[data-twin="0"]'), 20, "machines")
    assert "ALARM" in first.find_element("css selector", 'tr[data-twin="0"]').text
    _shot(first, "overview")

    _open(first, f"{net.url}/machine/0?metric=temperature&range=5%20min")
    wait_for(lambda: first.find_elements("css selector", "#chart canvas"), 20, "the chart")
    wait_for(
        lambda: first.find_element("id", "live-value").text not in ("", "\u2013"),
        20,
        "a live reading on the machine page",
    )
    _shot(first, "machine")

    # A second session (the facility's operator) watches the alarms; it is never reloaded.
    second.get(login_link(net.url, operator))
    _open(second, net.url + "/alarms")
    assert _row_state(second, net.alert) == "active-unacknowledged"

    _open(first, net.url + "/alarms")
    with Client(net.rpc, timeout=30) as c:
        meta = {p["name"]: p for p in c.info.metadata["pallets"]}
    calls = {x["name"] for x in meta["Maintenance"]["calls"]}
    acknowledge = "acknowledge_alert" in calls
    button = "button.ack" if acknowledge else "button.order"
    row = first.find_element("css selector", f'tr[data-alarm="{net.alert}"]')
    row.find_element("css selector", button).click()
    wait_for(lambda: first.find_elements("id", "sign-request"), 20, "the signing dialog")
    request = first.find_element("id", "sign-request").text
    _shot(first, "sign")
    # The user signs where the key lives (twinchain dashboard sign); the browser never has it.
    first.find_element("id", "sign-signature").send_keys(sign_text(owner, request))
    first.find_element("id", "sign-submit").click()
    wait_for(
        lambda: "finalized" in first.find_element("id", "sign-status").text,
        30,
        lambda: f"the action finalized: {first.find_element('id', 'sign-status').text}",
    )

    with Client(net.rpc, timeout=30) as c:
        (alert,) = [x for x in c.call("twin_alerts", 0) if x["id"] == net.alert]
    if acknowledge:
        assert alert["state"] == "Acknowledged", alert
        assert alert["acknowledged"]["by"] == "0x" + owner.public.hex(), alert
        wait_for(lambda: _row_state(second, net.alert) == "acknowledged", 15,
                 "the acknowledgement in the second session")  # fmt: skip
    else:
        order = alert["workOrder"]
        assert order is not None, alert
        wait_for(lambda: f"#{order}" in _row_text(second, net.alert), 15,
                 "the work order in the second session")  # fmt: skip
    _shot(second, "alarms")
    for page in ("orders", "reports", "network"):
        _open(first, f"{net.url}/{page}")
        _shot(first, page)


def test_a_user_of_facility_b_sees_none_of_facility_a_private_data(
    net: Net, browsers: tuple[Any, Any]
) -> None:
    a, b = net.domain[net.slug(0)], net.domain[net.slug(1)]
    cookie_b, csrf_b = _sign_in(net.url, net.key(b["operator"]))
    cookie_a, _ = _sign_in(net.url, net.key(a["owner"]))

    # A's owner reads the private metric of its twin, raw, from its archive.
    def has_points() -> bool:
        s, got = _get(f"{net.url}/api/machines/0/series?metric={POWER}&width=400", cookie_a)
        return s == 200 and got["total"] > 0

    wait_for(has_points, 30, "facility A's archive to serve power readings to its owner")

    # B's operator: public data yes, private no, through every endpoint.
    s, m = _get(f"{net.url}/api/machines/0", cookie_b)
    assert s == 200 and m["mayReadPrivate"] is False and m["documents"] == []
    power = next(x for x in m["metrics"] if x["name"] == POWER)
    assert power["public"] is False and power["readable"] is False
    for q in (f"metric={POWER}", f"metric={POWER}&source=windows", "metric=temperature"):
        s, got = _get(f"{net.url}/api/machines/0/series?{q}", cookie_b)
        assert s == 403 and got["error"]["code"] == "forbidden", (q, got)
    s, got = _get(f"{net.url}/api/machines/0/documents/0x{'ab' * 32}", cookie_b)
    assert s == 403, got
    s, got = _get(f"{net.url}/api/overview", cookie_b)
    assert s == 200 and not any("power" in json.dumps(x) for x in got["machines"])
    # Public window aggregates stay readable.
    s, got = _get(f"{net.url}/api/machines/0/series?metric=temperature&source=windows", cookie_b)
    assert s == 200
    # No session, a forged cookie, a missing CSRF token: refused.
    assert _get(f"{net.url}/api/machines/0")[0] == 401
    assert _get(f"{net.url}/api/machines/0", "twinchain_dashboard=forged")[0] == 401
    s, got = _post(net.url, "/api/actions", {"kind": "acknowledge", "alert": 0}, cookie_b, None)
    assert s == 403 and got["error"]["code"] == "csrf"
    s, got = _post(net.url, "/api/actions", {"kind": "nope", "alert": 0}, cookie_b, csrf_b)
    assert s == 400 and "kind must be" in got["error"]["message"]

    # The grant between competitors: B's auditor may read A's twin 0, so the dashboard shows it.
    cookie_aud, _ = _sign_in(net.url, net.key(b["auditor"]))
    s, got = _get(f"{net.url}/api/machines/0/series?metric={POWER}&width=400", cookie_aud)
    assert s == 200 and got["total"] > 0, got
    s, got = _get(f"{net.url}/api/machines/1/series?metric={POWER}&width=400", cookie_aud)
    assert s == 403, got  # and no other twin

    # In the page: B's operator finds the private metric marked and disabled.
    first, _ = browsers
    first.delete_all_cookies()
    first.get(login_link(net.url, net.key(b["operator"])))
    _open(first, f"{net.url}/machine/0")
    opt = first.find_element("css selector", f'#metric option[value="{POWER}"]')
    assert opt.get_attribute("disabled") is not None and "no access" in opt.text
    docs = first.find_element("id", "documents-hidden").text
    assert docs == "no documents" or "🔒" in docs, docs
    assert "🔒" in first.find_element("id", "facility-reports").text
    assert "power" not in first.find_element("id", "chart-info").text
