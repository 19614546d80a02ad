"""The web page through the TestClient: login cookie, redirects, the search form."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)


def test_without_cookie_the_page_redirects_to_login(client) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "Token" in client.get("/login").text


def test_login_sets_an_httponly_cookie_and_shows_results(client, published) -> None:
    r = client.post("/login", data={"token": published.researcher}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/", params={"modality": "MR", "sex": "female"})
    assert page.status_code == 200
    assert "1 collection at 1 site" in " ".join(page.text.split()) and "MR brain imaging" in page.text
    assert 'value="MR" checked' in page.text


@pytest.mark.parametrize("who", ["site_a", "nobody"])
def test_site_tokens_and_unknown_tokens_cannot_log_in(client, tokens, who) -> None:
    token = getattr(tokens, who, "fh_unknown")
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers


def test_logout_forgets_the_cookie(client, tokens) -> None:
    client.post("/login", data={"token": tokens.searcher})
    assert client.get("/", follow_redirects=False).status_code == 200
    client.post("/logout")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_web_searches_are_audited(client, published) -> None:
    client.post("/login", data={"token": published.searcher})
    client.get("/", params={"country": "FR"})
    audit = client.get("/audit", headers=published.headers("hub_admin")).json()
    assert any(
        a["action"] == "catalog.search" and a["detail"]["filters"] == {"country": ["FR"]} for a in audit
    )
