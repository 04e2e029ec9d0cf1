"""Dashboard: the triage queue with 1,000 open episodes, and how fast a new escalation reaches an open queue.

A real uvicorn server over a fresh cloud DB (SQLite in a temporary folder) holding `--episodes` open
escalations of as many patients, signed in through the real form. `first_paint_ms` is what the server
contributes to the first paint: the landing page plus the first page of queue rows (`/api/queue`), fetched
back to back as the page's script does, repeated; `browser_first_paint_ms` is the whole of it in headless
Debian chromium: navigation until the first rows are drawn. `push_ms`: with the event stream
(`/api/queue/events`) open, an escalation is stored as the cloud ingest stores it, and the clock stops when the
stream announces it; repeated.

    .venv/bin/python bench/dashboard.py [--episodes 1000] [--pushes 20]

Speed goals (issue 16): first paint ≤ 1 s with 1,000 open episodes; a push ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn

from bench._common import free_port, percentile, write_result
from cloud_expert.accounts import add_user
from cloud_expert.ingest import store_escalation
from cloud_expert.web.main import create_app
from shared.messages import utcnow
from shared.settings import Settings
from tests.cloud_expert.factories import make_escalation

PASSWORD = "a benchmark password"


def _seed(app: object, n: int) -> None:
    sessions = app.state.sessions  # type: ignore[attr-defined]
    t0 = utcnow() - timedelta(hours=2)
    with sessions() as session:
        add_user(session, "bench", PASSWORD, "clinician", None)
        for i in range(n):
            level = ("emergency", "urgent")[i % 2]
            store_escalation(session, make_escalation(site="bench", patient_id=f"pt-b{i:05d}", level=level),
                             t0 + timedelta(seconds=i))
            if i % 200 == 199:
                session.commit()
        session.commit()


def _sign_in(client: httpx.Client) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1),
                                       "next": "/"})
    assert done.status_code in (200, 303), done.status_code


def run(episodes: int, pushes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), database_url=f"sqlite:///{Path(state) / 'cloud.db'}")
        app = create_app(settings)
        _seed(app, episodes)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                _sign_in(client)
                paints, total = [], 0
                for _ in range(10):
                    started = time.perf_counter()
                    assert client.get("/").status_code == 200
                    page = client.get("/api/queue", headers={"accept": "application/json"}).json()
                    paints.append((time.perf_counter() - started) * 1000)
                    total = page["total"]
                push = _pushes(client, app, pushes)
            browser_paint = _browser_first_paint(base)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            app.state.engine.dispose()
    return {
        "episodes": episodes, "rows_in_queue": total,
        "first_paint_ms": round(percentile(paints, 50), 1), "first_paint_p99_ms": round(percentile(paints, 99), 1),
        "push_p50_ms": round(percentile(push, 50), 1), "push_p99_ms": round(percentile(push, 99), 1),
        "browser_first_paint_ms": browser_paint,
        "pushes": len(push), "db": "SQLite (a temporary file)", "machine": f"{os.cpu_count()} CPUs, shared",
    }


def _browser_first_paint(base: str) -> dict[str, float] | None:
    """In headless Debian chromium: from navigation to the queue's first rows drawn (the page, its script, its
    fetch of the rows), p50 and worst of 5 loads. None where Playwright or chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").exists():
        return None
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(base + "/login")
        page.fill("#username", "bench")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        for _ in range(5):
            started = time.perf_counter()
            page.goto(base + "/")
            page.wait_for_selector("#rows tr[data-ids]", timeout=30_000)
            times.append((time.perf_counter() - started) * 1000)
        browser.close()
    return {"p50": round(percentile(times, 50), 1), "max": round(max(times), 1)}


def _pushes(client: httpx.Client, app: object, n: int) -> list[float]:
    arrived: list[float] = []
    ready, got = threading.Event(), threading.Event()

    def listen() -> None:
        with client.stream("GET", "/api/queue/events") as stream:
            ready.set()
            for line in stream.iter_lines():
                if line.startswith("event: episode"):
                    arrived.append(time.perf_counter())
                    got.set()
                    if len(arrived) >= n:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    time.sleep(1.0)
    sessions = app.state.sessions  # type: ignore[attr-defined]
    latencies = []
    for i in range(n):
        got.clear()
        sent = time.perf_counter()
        with sessions() as session:
            store_escalation(session, make_escalation(site="bench", patient_id=f"pt-push{i}"), utcnow())
            session.commit()
        if got.wait(10):
            latencies.append((arrived[-1] - sent) * 1000)
        time.sleep(random.uniform(0.2, 0.9))  # not in step with the stream's 0.5 s poll
    return latencies


def _paint_line(paint: object) -> str:
    if not isinstance(paint, dict):
        return "not measured (no Playwright or chromium)"
    return f"p50 {paint['p50']} ms, worst {paint['max']} ms of 5 (goal ≤ 1000)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=1000, help="open escalations in the queue")
    parser.add_argument("--pushes", type=int, default=20, help="escalations pushed to an open queue")
    args = parser.parse_args()
    result = run(args.episodes, args.pushes)
    write_result("dashboard", result, [
        ("open episodes (queue rows)", f"{result['episodes']} ({result['rows_in_queue']})"),
        ("first paint, server side", f"p50 {result['first_paint_ms']} ms, p99 {result['first_paint_p99_ms']} ms "
                                     "(goal ≤ 1000)"),
        ("first paint in chromium", _paint_line(result["browser_first_paint_ms"])),
        ("push to an open queue", f"p50 {result['push_p50_ms']} ms, p99 {result['push_p99_ms']} ms (goal ≤ 2000)"),
        ("pushes measured", str(result["pushes"])),
    ])


if __name__ == "__main__":
    main()
