"""Every endpoint x every role: 401 without or with a bad token, 403 for the wrong role (docs/hub-rbac.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.central_hub.conftest import make_summary

ROLES = ("hub_admin", "researcher", "searcher", "site_a")
#: (method, path, roles allowed) — must match docs/hub-rbac.md.
ENDPOINTS = [
    ("PUT", "/summaries", {"site_a"}),
    ("GET", "/catalog/search", {"hub_admin", "researcher", "searcher"}),
    ("GET", "/catalog/sites/site-a", {"hub_admin", "researcher"}),
    ("GET", "/sites", {"hub_admin"}),
    ("POST", "/sites", {"hub_admin"}),
    ("POST", "/tokens", {"hub_admin"}),
    ("GET", "/tokens", {"hub_admin"}),
    ("DELETE", "/tokens/1", {"hub_admin"}),
    ("GET", "/audit", {"hub_admin"}),
    ("GET", "/status", {"hub_admin"}),
    ("POST", "/access-requests", {"researcher"}),
    ("GET", "/access-requests", {"hub_admin", "researcher", "site_a"}),
    ("GET", "/access-requests/1", {"hub_admin", "researcher", "site_a"}),
    ("GET", "/site/access-requests", {"site_a"}),
    ("POST", "/access-requests/1/decision", {"site_a"}),
    ("GET", "/models", {"hub_admin", "researcher", "site_a"}),
    ("GET", "/models/seg3d/1", {"hub_admin", "researcher", "site_a"}),
    ("GET", "/models/seg3d/1/file", {"hub_admin", "researcher", "site_a"}),
    ("GET", "/models/seg3d/1/plot.png", {"hub_admin", "researcher", "site_a"}),
]
BODIES = {
    "/summaries": make_summary("site-a"),
    "/sites": {"name": "new-site", "country": "IT"},
    "/tokens": {"role": "searcher", "name": "someone"},
    "/access-requests": {
        "project": "rbac",
        "sites": ["site-a"],
        "templates": ["seg3d"],
        "justification": "role matrix of the access routes",
    },
    "/access-requests/1/decision": {"decision": "denied", "reason": "only a test"},
}
DOC = Path(__file__).resolve().parents[2] / "docs" / "hub-rbac.md"


@pytest.fixture(autouse=True)
def _project_with_a_request(request: pytest.FixtureRequest) -> None:
    """Project 'rbac' with the researcher as member and access request 1 naming site-a."""
    if "tokens" not in request.fixturenames:
        return
    from central_hub.auth.tokens import Principal
    from central_hub.db import session_factory
    from central_hub.projects import service

    settings = request.getfixturevalue("hub_settings")
    request.getfixturevalue("tokens")
    with session_factory(settings.database_url)() as session:
        service.create_project(session, "rbac", None, ["site-a"])
        service.add_member(session, "rbac", "researcher-user")
        who = Principal(token_id=0, name="researcher-user", role="researcher")
        service.file_request(session, who, BODIES["/access-requests"])
        session.commit()


@pytest.fixture
def registry_model(hub_settings):  # type: ignore[no-untyped-def]
    """One published model version (seg3d 1) with its weights file."""
    from central_hub.db import session_factory
    from central_hub.models.models import HubModel
    from central_hub.models.service import MODEL_FILE, model_dir

    folder = model_dir(hub_settings, "seg3d", 1)
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"weights")
    with session_factory(hub_settings.database_url)() as session:
        session.add(
            HubModel(
                name="seg3d",
                version=1,
                template="seg3d",
                template_digest="0" * 64,
                sha256="1" * 64,
                size_bytes=7,
            )
        )
        session.commit()


def _call(client, method: str, path: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.request(method, path, json=BODIES.get(path), headers=headers)


@pytest.mark.parametrize(("method", "path", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_without_or_with_an_unknown_token_is_401(client, tokens, method, path, allowed) -> None:
    assert _call(client, method, path, {}).status_code == 401
    bad = {"Authorization": "Bearer fh_not-a-real-token-at-all-000000000000000"}
    assert _call(client, method, path, bad).status_code == 401


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_role_matrix(client, tokens, registry_model, method, path, allowed, role) -> None:
    r = _call(client, method, path, tokens.headers(role))
    if role in allowed:
        assert r.status_code < 400, r.text
    else:
        assert r.status_code == 403, r.text


def test_a_site_token_can_never_publish_for_another_site(client, tokens) -> None:
    r = client.put("/summaries", json=make_summary("site-b"), headers=tokens.headers("site_a"))
    assert r.status_code == 403 and r.json()["field"] == "site"
    search = client.get("/catalog/search", headers=tokens.headers("researcher")).json()
    assert search["total_collections"] == 0


def test_revoked_tokens_are_refused(client, tokens) -> None:
    listed = client.get("/tokens", headers=tokens.headers("hub_admin")).json()
    assert all("token" not in t and "token_hash" not in t for t in listed)
    researcher = next(t for t in listed if t["role"] == "researcher")
    r = client.delete(f"/tokens/{researcher['id']}", headers=tokens.headers("hub_admin"))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert client.get("/catalog/search", headers=tokens.headers("researcher")).status_code == 401


def test_tokens_are_stored_hashed(hub_settings, tokens) -> None:
    from sqlalchemy import select

    from central_hub.auth.models import Token
    from central_hub.auth.tokens import hash_token
    from central_hub.db import session_factory

    with session_factory(hub_settings.database_url)() as session:
        stored = {t.token_hash for t in session.scalars(select(Token))}
    assert tokens.researcher not in stored and hash_token(tokens.researcher) in stored


def test_rbac_doc_lists_every_endpoint() -> None:
    text = DOC.read_text()
    for method, path, _ in ENDPOINTS:
        generic = (
            path.replace("site-a", "{name}")
            .replace("/tokens/1", "/tokens/{id}")
            .replace("/access-requests/1", "/access-requests/{id}")
            .replace("/models/seg3d/1", "/models/{name}/{version}")
        )
        assert f"`{method} {generic}`" in text, f"{method} {generic} missing from docs/hub-rbac.md"
