"""The console in a real browser (Playwright driving Debian's Chromium) against the real binary.

Run by `.ci/browser.sh` (which installs Playwright and Chromium) for each database:

    IDEMHOOK_BIN=target/debug/idemhook IDEMHOOK_BROWSER_DB=sqlite:///tmp/x.db?mode=rwc \
        target/browser-venv/bin/pytest -q tests/browser

The tests run in file order against one server and one signed-in page, as an operator would:
a wrong token, sign-in, events arriving on the overview, the list's filters, an event page
(and a hostile payload on it), a replay of a rejected event, a redelivery and a redrive of
dead ones, a destination paused and resumed, sign-out. Screenshots go to target/browser/.
"""

import base64
import json
import os
import pathlib
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = str(pathlib.Path(os.environ.get("IDEMHOOK_BIN", ROOT / "target/debug/idemhook")).resolve())
DB = os.environ.get("IDEMHOOK_BROWSER_DB", "")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "target/browser"
TOKEN = "browser-test-admin-token-0123456789"
VIEWER_TOKEN = "browser-test-viewer-token-0123456789"
SECRET = "whsec_" + base64.b64encode(b"browser-test-forward-secret").decode()
TIMEOUT_MS = 15_000


class App:
    """The user's app that deliveries go to: answers `status`, counts what it got."""

    status = 500
    received = 0

    @classmethod
    def start(cls):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                cls.received += 1
                self.send_response(cls.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql(statement):
    """Runs `statement` on the test's database with the database's own client."""
    if DB.startswith("sqlite:"):
        import sqlite3

        path = DB.removeprefix("sqlite://").split("?")[0]
        with sqlite3.connect(path) as conn:
            conn.execute(statement)
    elif DB.startswith("postgres"):
        subprocess.run(["psql", "-q", DB, "-c", statement], check=True)
    else:
        rest = DB.removeprefix("mysql://")
        user, hostport_db = rest.split("@")
        hostport, name = hostport_db.split("/")
        host, port = hostport.split(":")
        subprocess.run(
            ["mysql", "-u", user, "-h", host, "-P", port, name, "-e", statement], check=True
        )


@pytest.fixture(scope="module")
def server():
    app = App.start()
    work = pathlib.Path(tempfile.mkdtemp(prefix="idemhook_browser_"))
    db = DB or f"sqlite://{work}/console.db?mode=rwc"
    globals()["DB"] = db
    (work / "Rocket.toml").write_text(
        f"""
[default]
log_level = "critical"
[default.idemhook]
database_url = "{db}"
forward_poll_ms = 100
[default.idemhook.sources.shop]
handlers = ["inbox", "payments", "forward"]
[default.idemhook.sources.shop.forward]
url = "http://127.0.0.1:{app.server_address[1]}/hook"
secret_env = "FWD_SECRET"
max_attempts = 1
# Dead deliveries are what these pages show: the circuit breaker, which would hold them
# pending once failures add up, is off here.
pause_after_failures = 0
timeout_secs = 2
backoff_base_ms = 50
backoff_max_secs = 1
[default.idemhook.sources.crm]
handlers = ["inbox"]
[default.idemhook.operators.viewer]
token_env = "VIEWER_TOKEN"
role = "read"
"""
    )
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "ROCKET_CONFIG": str(work / "Rocket.toml"),
        "ROCKET_PORT": str(port),
        "ROCKET_ADDRESS": "127.0.0.1",
        "RUST_LOG": "warn",
        "IDEMHOOK_ADMIN_TOKEN": TOKEN,
        "VIEWER_TOKEN": VIEWER_TOKEN,
        "FWD_SECRET": SECRET,
    }
    log = open(work / "idemhook.log", "wb")
    proc = subprocess.Popen([BIN], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/health/live", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((work / "idemhook.log").read_text())
            time.sleep(0.1)
    else:
        raise RuntimeError("idemhook did not start: " + (work / "idemhook.log").read_text())
    yield base
    proc.terminate()
    proc.wait(timeout=30)
    app.shutdown()


@pytest.fixture(scope="module")
def page(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.dialogs = []

        def on_dialog(dialog):
            page.dialogs.append((dialog.type, dialog.message))
            dialog.accept()

        page.on("dialog", on_dialog)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page
        browser.close()


def deliver(server, source, event_id, order, amount, currency="eur", event_type="payment_succeeded", note=None):
    body = {"id": event_id, "type": event_type,
            "data": {"order_id": order, "amount": amount, "currency": currency}}
    if note is not None:
        body["data"]["note"] = note
    req = urllib.request.Request(f"{server}/webhooks/{source}", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def api(method, server, path):
    """The admin API with the admin token, as the CLI calls it."""
    req = urllib.request.Request(f"{server}{path}", method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def cell(page, source, field):
    return page.locator(f'#sources tr[data-source="{source}"] [data-field="{field}"]')


def test_a_wrong_token_is_refused(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Wrong token.")
    assert page.context.cookies() == []


def test_sign_in_keeps_the_token_in_an_httponly_strict_cookie(page):
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "idemhook_session"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == "", "page scripts cannot read the session"


def test_events_arrive_on_the_overview(page, server):
    expect(cell(page, "shop", "new")).to_have_text("0")
    for i in range(1, 4):
        answer = deliver(server, "shop", f"evt_{i}", f"o{i}", 100 * i)
        assert answer[1].get("status") == "processed", answer
    assert deliver(server, "shop", "evt_1", "o1", 100)[1]["status"] == "duplicate"
    # No reload: the page's script refreshes the table and the chart.
    expect(cell(page, "shop", "new")).to_have_text("3")
    expect(cell(page, "shop", "duplicates")).to_have_text("1")
    expect(cell(page, "shop", "dead")).to_have_text("3")  # the app answers 500, one attempt each
    expect(page.locator("#chart svg rect.new")).not_to_have_count(0)
    expect(cell(page, "crm", "new")).to_have_text("0")
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    assert page.errors == []


def test_the_list_filters_by_status_and_type(page, server):
    # o9 is kept in eur; a usd payment for it is refused for good by the payments handler.
    deliver(server, "shop", "evt_eur", "o9", 50)
    status, body = deliver(server, "shop", "evt_usd", "o9", 70, currency="usd")
    assert (status, body["status"]) == (200, "rejected")
    deliver(server, "crm", "lead_1", "x", 0, event_type="lead_created")
    page.click("text=Events")
    expect(page.locator("#events tbody tr")).to_have_count(6)
    page.select_option("select[name=status]", "rejected")
    page.click("text=Filter")
    expect(page).to_have_url(re.compile(r"status=rejected"))
    expect(page.locator("#events tbody tr")).to_have_count(1)
    expect(page.locator("#events tbody tr td").nth(3)).to_have_text("evt_usd")
    page.select_option("select[name=status]", "")
    page.fill("input[name=type]", "lead_created")
    page.click("text=Filter")
    expect(page.locator("#events tbody tr")).to_have_count(1)
    expect(page.locator("#events tbody tr td").nth(1)).to_have_text("crm")
    page.fill("input[name=type]", "")
    page.fill("input[name=since]", "yesterday")
    page.click("text=Filter")
    expect(page.get_by_role("alert")).to_contain_text("`since`")


def test_a_hostile_payload_is_shown_as_text(page, server):
    note = '<script>window.pwned = 1</script><img src=x onerror="alert(1)">'
    assert deliver(server, "shop", "evt_<b>x</b>", "o_h", 1, note=note)[0] == 200
    page.goto("/console/events?source=shop")
    page.get_by_role("link", name="evt_<b>x</b>").click()
    expect(page.locator("#event-id")).to_have_text("evt_<b>x</b>")
    expect(page.locator("#payload")).to_contain_text('"note": "<script>window.pwned = 1</script>')
    expect(page.locator("#payload")).to_contain_text('"order_id": "o_h"')
    assert page.evaluate("window.pwned") is None
    assert page.locator("#payload script, #payload img, dd b").count() == 0
    assert [d for d in page.dialogs if d[0] == "alert"] == []


def test_replaying_a_rejected_event(page, server):
    page.goto("/console/events?status=rejected")
    page.get_by_role("link", name="evt_usd").click()
    expect(page.locator("#status")).to_have_text("rejected")
    page.click("#replay")
    # Still refused while the order is kept in eur: nothing applied, the reason shown.
    expect(page.locator("#action-result")).to_contain_text("Refused (422)")
    expect(page.locator("#action-result")).to_contain_text("kept in eur")
    sql("UPDATE orders SET currency = 'usd' WHERE order_id = 'o9'")
    page.click("#replay")
    expect(page.locator("#status")).to_have_text("processed")  # the page reloads
    expect(page.locator("table.replays tbody tr td").nth(3)).to_have_text("admin")
    page.screenshot(path=str(SHOTS / "event.png"), full_page=True)


def test_redelivering_a_dead_delivery(page, server):
    App.status = 200
    page.click("text=Dead deliveries")
    expect(page.locator("#events tbody tr").first).to_be_visible()
    page.get_by_role("link", name="evt_1", exact=True).click()
    expect(page.locator("#delivery-status")).to_have_text("dead")
    page.click("#redeliver")
    # Pending after the reload, then delivered: the page follows it.
    expect(page.locator("#delivery-status")).to_have_text("delivered")
    expect(page.locator("table.attempts").last).to_contain_text("500")


def test_redriving_every_dead_delivery(page, server):
    page.click("text=Dead deliveries")
    dead = page.locator("#events tbody tr").count()
    assert dead >= 3
    page.click("#redrive")
    assert page.dialogs[-1][0] == "confirm"
    expect(page.locator("#action-result")).to_contain_text("done")
    expect(page.locator("#action-result")).to_contain_text(f"matched {dead}")
    for _ in range(100):
        page.reload()
        if page.locator("#events tbody tr").count() == 0:
            break
        time.sleep(0.2)
    expect(page.locator("p.empty")).to_have_text("No events match.")
    page.goto("/console")
    expect(cell(page, "shop", "dead")).to_have_text("0")


def test_a_state_change_without_the_csrf_token_is_refused(page):
    # The cookie alone, as a forged cross-site request would carry it (were SameSite not there).
    status = page.evaluate(
        """async () => (await fetch('/webhooks/shop/events/evt_1/redeliver?type=payment_succeeded',
                                     {method: 'POST', credentials: 'same-origin'})).status"""
    )
    assert status == 403


def test_pausing_and_resuming_a_destination(page, server):
    page.click("text=Destinations")
    row = '#destinations tr[data-destination="shop/forward"]'
    expect(page.locator(f"{row} [data-field=state]")).to_have_text("active")
    page.click(f"{row} button.pause")
    assert page.dialogs[-1][0] == "confirm"
    # The page reloads with the destination's new state.
    expect(page.locator(f"{row} [data-field=state]")).to_have_text("paused")
    expect(page.locator(f"{row} [data-field=reason]")).to_contain_text("operator")
    page.screenshot(path=str(SHOTS / "destinations.png"), full_page=True)
    page.click(f"{row} button.resume")
    expect(page.locator(f"{row} [data-field=state]")).to_have_text("active")
    # The buttons went through the admin API: it says the same.
    status, body = api("GET", server, "/destinations")
    assert status == 200
    assert [d["state"] for d in body["destinations"] if d["name"] == "forward"] == ["active"]


def test_sign_out(page):
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto("/console/events")
    expect(page.locator("h1")).to_have_text("Sign in")
    assert page.errors == []


def test_a_read_operator_sees_everything_and_no_button_and_the_audit_says_who_did_what(page):
    page.goto("/console/login")
    page.fill("#token", VIEWER_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("header .who")).to_have_text("viewer (read)")
    page.goto("/console/events/shop/evt_1?type=payment_succeeded")
    expect(page.locator("#event-id")).to_have_text("evt_1")
    assert page.locator("button.action").count() == 0
    page.goto("/console/destinations")
    expect(page.locator('#destinations tr[data-destination="shop/forward"]')).to_be_visible()
    assert page.locator("button.action").count() == 0
    # The admin API refuses the change a read operator's page does not offer, CSRF token and all.
    status = page.evaluate(
        """async () => (await fetch('/destinations/shop/forward/pause', {method: 'POST',
            headers: {'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}})).status"""
    )
    assert status == 403
    # The audit: admin's pause and resume from the earlier pages, this refusal, the sign-ins.
    page.click("text=Audit")
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_contain_text("viewer")
    expect(rows.first).to_contain_text("forbidden")
    text = page.locator("#audit").inner_text()
    for action in ["pause", "resume", "sign_in", "sign_out"]:
        assert action in text, action
    page.select_option("select[name=action]", "resume")
    page.click("form.filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("admin")
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")
    assert page.errors == []
