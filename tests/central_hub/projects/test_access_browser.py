"""The "Request access" button in real headless Chromium against a real hub server.

A researcher (member of project 'lung') logs in, clicks "Request access" beside the CT chest
collection of site-a, fills the form and sends it; the request page shows site-a pending. site-a
decides at the site (the decision call its ``site-node requests approve`` makes) and the page shows
the approval after a reload.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.central_hub.cdp import Browser, chromium_path
from tests.central_hub.test_web_browser import ARTIFACTS, _publish

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    instance = Browser(tmp_path / "chromium-profile")
    yield instance
    instance.close()


def _state(dom: str, site: str) -> str:
    match = re.search(rf'data-site="{site}"><td>{site}</td><td class="state">([^<]*)<', dom)
    assert match, f"no decision row for {site}"
    return match.group(1)


@pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)
def test_request_access_button(
    live_hub: str, tokens: Any, hub_settings: Any, browser: Browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from central_hub.db import session_factory
    from central_hub.projects import service

    _publish(live_hub, tokens)
    with session_factory(hub_settings.database_url)() as session:
        service.create_project(session, "lung", "Lung study", ["site-a", "site-b"])
        service.add_member(session, "lung", "researcher-user")
        session.commit()

    browser.navigate(f"{live_hub}/login")
    browser.evaluate(f"document.getElementById('token').value = {tokens.researcher!r}")
    browser.run_and_wait_load("document.querySelector('form[action=\"/login\"]').submit()")
    catalog = browser.dom()
    assert 'class="request-access" data-site="site-a" data-collection="ct-chest"' in catalog

    browser.run_and_wait_load(
        'document.querySelector(\'a.request-access[data-site="site-a"][data-collection="ct-chest"]\').click()'
    )
    form = browser.dom()
    assert "Request access" in form and 'value="site-a"' in form and 'value="ct-chest"' in form
    end = (dt.date.today() + dt.timedelta(days=120)).isoformat()
    browser.evaluate(
        "document.getElementById('justification').value = 'NSCLC survival, ethics ref 2026-17';"
        f"document.getElementById('end_date').value = '{end}';"
        'document.querySelector(\'input[name="templates"][value="fedquery"]\').checked = true;'
    )
    browser.run_and_wait_load("document.getElementById('submit-request').click()")
    assert "/access/requests/" in browser.evaluate("location.pathname")
    page = browser.dom()
    assert _state(page, "site-a") == "pending" and "ethics ref 2026-17" in page
    request_id = int(browser.evaluate("location.pathname").rsplit("/", 1)[1])

    stored = httpx.get(
        f"{live_hub}/access-requests/{request_id}", headers=tokens.headers("researcher")
    ).json()
    assert stored["templates"] == ["fedquery"] and stored["collections"] == ["ct-chest"]
    assert stored["end_date"] == end and stored["sites"] == ["site-a"]

    r = httpx.post(
        f"{live_hub}/access-requests/{request_id}/decision",
        json={"decision": "approved", "templates": ["fedquery"]},
        headers=tokens.headers("site_a"),
    )
    assert r.status_code == 200, r.text
    browser.navigate(f"{live_hub}/access/requests/{request_id}")
    assert _state(browser.dom(), "site-a") == "approved"

    shot = browser.screenshot(tmp_path / "access-request.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "access-request.png")


@pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)
def test_searchers_get_no_button_and_outsiders_no_page(client: Any, tokens: Any, hub_settings: Any) -> None:
    from central_hub.db import session_factory
    from central_hub.projects import service

    _publish_client(client, tokens)
    with session_factory(hub_settings.database_url)() as session:
        service.create_project(session, "lung", None, ["site-a"])
        service.add_member(session, "lung", "researcher-user")
        session.commit()
    client.cookies.set("hub_token", tokens.searcher)
    assert "request-access" not in client.get("/").text
    client.cookies.set("hub_token", tokens.researcher)
    assert "request-access" in client.get("/").text
    body = {
        "project": "lung",
        "sites": "site-a",
        "templates": ["seg3d"],
        "justification": "a real reason here",
    }
    r = client.post("/access/new", data=body, follow_redirects=False)
    assert r.status_code == 303
    path = r.headers["location"]
    assert "pending" in client.get(path).text
    r = client.post("/access/new", data={**body, "justification": "short"}, follow_redirects=False)
    assert r.status_code == 422 and "please check justification" in r.text
    client.cookies.set("hub_token", tokens.searcher)
    assert client.get(path, follow_redirects=False).status_code == 303  # searchers: to the login page


def _publish_client(client: Any, tokens: Any) -> None:
    from tests.central_hub.conftest import make_summary

    r = client.put("/summaries", json=make_summary("site-a"), headers=tokens.headers("site_a"))
    assert r.status_code == 200, r.text
