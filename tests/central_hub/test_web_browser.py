"""The catalog page in real headless Chromium against a real uvicorn server: log in, filter, counts change."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.central_hub.cdp import Browser, chromium_path
from tests.central_hub.conftest import CT_CHEST, MR_BRAIN, counts, make_summary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "central_hub"


def _count(dom: str, facet: str, value: str) -> str:
    match = re.search(rf'data-facet="{facet}" data-value="{re.escape(value)}">([^<]*)<', dom)
    assert match, f"no count for {facet}={value}"
    return html.unescape(match.group(1))


def _total(dom: str) -> str:
    match = re.search(r'id="total">\s*([^<]*?)\s*<', dom, re.S)
    assert match
    return " ".join(match.group(1).split())


@pytest.fixture
def browser(tmp_path):  # type: ignore[no-untyped-def]
    instance = Browser(tmp_path / "chromium-profile")
    yield instance
    instance.close()


def _publish(url: str, tokens) -> None:  # type: ignore[no-untyped-def]
    pet = {
        **CT_CHEST,
        "key": "pt-chest",
        "modality": "PT",
        "description": "PET chest imaging",
        "totals": counts(40),
        "facets": {"sex": {"female": counts(25), "male": counts(15)}},
    }
    for site, token, colls in (
        ("site-a", tokens.site_a, [CT_CHEST, MR_BRAIN]),
        ("site-b", tokens.site_b, [pet]),
    ):
        r = httpx.put(
            f"{url}/summaries",
            json=make_summary(site, collections=colls),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)
def test_login_filter_and_see_counts_change(live_hub, tokens, browser, tmp_path, request) -> None:
    _publish(live_hub, tokens)
    browser.navigate(f"{live_hub}/")
    assert "Log in" in browser.dom()  # no cookie: the login form
    browser.evaluate(f"document.getElementById('token').value = {tokens.searcher!r}")
    browser.run_and_wait_load("document.querySelector('form[action=\"/login\"]').submit()")
    before = browser.dom()
    assert _total(before) == "3 collections at 2 sites"
    assert _count(before, "sex", "female") == "105"  # 62 + 18 + 25
    assert 'data-site="site-b"' in before

    browser.run_and_wait_load(
        'document.querySelector(\'input[name="modality"][value="CT"]\').click();'
        "document.getElementById('apply').click()"
    )
    after = browser.dom()
    assert "modality=CT" in browser.evaluate("location.search")
    assert _total(after) == "1 collection at 1 site"
    assert _count(after, "sex", "female") == "62"
    assert _count(after, "sex", "unknown") == "<10"
    assert 'data-site="site-b"' not in after.split('id="collections"')[1]

    shot = browser.screenshot(tmp_path / "catalog-filtered.png")
    assert shot.stat().st_size > 5000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / f"{request.node.name.replace('[', '-').rstrip(']')}.png")
