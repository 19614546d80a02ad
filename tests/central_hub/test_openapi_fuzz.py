"""Schemathesis fuzzes every operation of the hub's OpenAPI: no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.central_hub.conftest import make_summary


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A SQLite hub app with a published summary and an admin and a site token."""
    from fastapi.testclient import TestClient

    from central_hub.app import create_app
    from central_hub.auth.tokens import create_token
    from central_hub.catalog.crud import create_site
    from central_hub.db import session_factory
    from central_hub.home import init_hub

    home = tmp_path_factory.mktemp("fuzz-hub")
    hub = init_hub(home, f"sqlite:///{home / 'hub.db'}")
    with session_factory(hub.database_url)() as session:
        admin = create_token(session, role="hub_admin", name="fuzz-admin")[1]
        site = create_site(session, "site-a", "DE")
        site_token = create_token(session, role="site", name="site-a", site_id=site.id)[1]
        session.commit()
    app = create_app(hub)
    with TestClient(app) as client:
        assert (
            client.put(
                "/summaries", json=make_summary(), headers={"Authorization": f"Bearer {site_token}"}
            ).status_code
            == 200
        )
    return app, admin, site_token


def _fuzz(operation, token: str) -> None:  # type: ignore[no-untyped-def]
    @given(case=operation.as_strategy())
    # derandomized: the same cases every CI run (a flaky red CI blocks landing); widen locally with
    # HYPOTHESIS settings profiles when hunting for new failures
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def check(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code < 500, (
            f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
        )

    check()


@pytest.mark.slow
def test_no_input_causes_a_server_error(fuzz_hub) -> None:  # type: ignore[no-untyped-def]
    app, admin, site_token = fuzz_hub
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.append(f"{operation.method.upper()} {operation.path}")
        _fuzz(operation, site_token if operation.path == "/summaries" else admin)
    assert "PUT /summaries" in seen and "GET /catalog/search" in seen


def test_revoke_with_an_out_of_range_token_id_is_422_not_500(client, tokens) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzzer: an id beyond 64 bits crashed SQLite's integer conversion."""
    response = client.delete("/tokens/6576790004624036724736", headers=tokens.headers("hub_admin"))
    assert response.status_code == 422
