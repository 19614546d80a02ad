"""Issue 13's hub defects, each reproduced and now answered safely."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.central_hub.conftest import counts, make_summary

PRIVACY_ROW = {
    "key": "ct-chest",
    "modality": "CT",
    "body_part": "CHEST",
    "description": "CT chest imaging",
    "totals": counts(22, 22, 22, None),
    "facets": {"sex": {"female": counts(20, 20, 20, None), "male": counts("<10", "<10", "<10", None)}},
}


def _audit(hub_settings, action: str = "security.refused") -> list:  # type: ignore[no-untyped-def]
    from central_hub.audit import AuditEvent
    from central_hub.db import session_factory

    with session_factory(hub_settings.database_url)() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_hidden_cell_derivable_by_subtraction_is_refused(client, tokens, hub_settings) -> None:
    """Total 22, female 20, male '<10': male = 2 by subtraction -> 422, and the refusal is audited."""
    r = client.put(
        "/summaries", json=make_summary(collections=[PRIVACY_ROW]), headers=tokens.headers("site_a")
    )
    assert r.status_code == 422 and r.json()["error"] == "privacy_violation"
    assert r.json()["field"] == "collections.0.facets.sex.persons"
    rows = _audit(hub_settings)
    assert [(e.detail["status"], e.detail["reason"]) for e in rows] == [(422, "privacy_violation")]
    assert rows[0].actor.startswith("token:fh_")
    safe = {
        **PRIVACY_ROW,
        "facets": {"sex": {"female": counts("suppressed", 20, 20, None), "male": counts("<10")}},
    }
    safe["facets"]["sex"]["male"] = counts("<10", "<10", "<10", None)
    safe["facets"]["sex"]["female"] = counts("suppressed", "suppressed", "suppressed", None)
    ok = client.put("/summaries", json=make_summary(collections=[safe]), headers=tokens.headers("site_a"))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("count", [2**63, 2**53 + 1, -1])
def test_counts_beyond_2_pow_53_are_422_not_500(client, tokens, count: int) -> None:
    big = {**PRIVACY_ROW, "totals": counts(count), "facets": {}}
    r = client.put("/summaries", json=make_summary(collections=[big]), headers=tokens.headers("site_a"))
    assert r.status_code == 422, r.text
    assert str(count) not in r.json()["message"]


def test_count_of_2_pow_53_is_stored(client, tokens) -> None:
    big = {**PRIVACY_ROW, "totals": counts(2**53, 2**53, 2**53, 2**53), "facets": {}}
    r = client.put("/summaries", json=make_summary(collections=[big]), headers=tokens.headers("site_a"))
    assert r.status_code == 200, r.text


def _login(client, token: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"token": token}, follow_redirects=False)


@pytest.mark.parametrize("page", ["²", "①", "١٢", "9" * 5000, "-3", "1e3"])
def test_web_page_parameters_take_ascii_digits_only(client, tokens, page: str) -> None:
    assert _login(client, tokens.searcher).status_code == 303
    for name in ("page", "page_size"):
        r = client.get("/", params={name: page})
        assert r.status_code == 200, (name, page, r.status_code)
    api = client.get("/catalog/search", params={"page": page}, headers=tokens.headers("searcher"))
    assert api.status_code == 422


@pytest.mark.parametrize("path", ["/login", "/healthz", "/catalog/search", "/docs", "/static/style.css"])
def test_every_page_sends_the_security_headers(client, path: str) -> None:
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_hub_admin_token_cannot_log_in_nor_work_as_a_cookie(client, tokens, hub_settings) -> None:
    r = _login(client, tokens.hub_admin)
    assert r.status_code == 401 and "hub_token" not in r.cookies
    # a hub_admin token planted as the page's cookie does not authorize the admin API either
    client.cookies.set("hub_token", tokens.hub_admin)
    assert client.get("/tokens").status_code == 401
    assert client.get("/catalog/search").status_code == 401
    client.cookies.clear()
    assert client.get("/tokens", headers=tokens.headers("hub_admin")).status_code == 200
    actors = [e.actor for e in _audit(hub_settings)]
    assert actors[0].startswith("token:fh_") and len(actors[0]) == len("token:") + 8


def test_refusals_are_audited_with_prefix_or_anonymous(client, tokens, hub_settings) -> None:
    assert client.get("/tokens").status_code == 401
    assert client.get("/tokens", headers={"Authorization": "Bearer fh_wrong-wrong-wrong"}).status_code == 401
    assert client.get("/tokens", headers=tokens.headers("searcher")).status_code == 403
    assert (
        client.put("/summaries", json=make_summary("site-b"), headers=tokens.headers("site_a")).status_code
        == 403
    )
    rows = sorted(_audit(hub_settings), key=lambda e: e.id)
    assert [(e.actor == "anonymous", e.detail["status"]) for e in rows] == [
        (True, 401),
        (True, 401),
        (False, 403),
        (False, 403),
    ]
    assert all("fh_wrong" not in str(e.detail) for e in rows)
    assert rows[3].detail["path"] == "/summaries" and rows[3].detail["field"] == "site"


def test_failed_authentications_are_throttled_per_address(hub_settings) -> None:
    from fastapi.testclient import TestClient

    from central_hub.app import create_app

    settings = hub_settings.model_copy(update={"max_auth_failures": 5, "security_audit_per_minute": 3})
    with TestClient(create_app(settings)) as client:
        statuses = [
            client.get("/sites", headers={"Authorization": f"Bearer fh_guess-{i:040d}"}).status_code
            for i in range(40)
        ]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        assert client.get("/healthz").status_code == 429  # the address waits out its window
    # a flood writes at most the audit budget
    assert len(_audit(hub_settings)) == 3


def test_a_publish_below_the_floor_is_audited(client, tokens, hub_settings) -> None:
    small = {
        **PRIVACY_ROW,
        "facets": {"sex": {"female": counts(20, 20, 20, None), "male": counts(2, 2, 2, None)}},
    }
    r = client.put("/summaries", json=make_summary(collections=[small]), headers=tokens.headers("site_a"))
    assert r.status_code == 422
    (row,) = _audit(hub_settings)
    assert row.detail["reason"] == "privacy_violation" and row.actor.startswith("token:fh_")
