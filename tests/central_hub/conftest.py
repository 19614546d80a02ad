"""Hub fixtures: a fresh hub database per test (SQLite, and PostgreSQL when reachable), tokens, summaries."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from central_hub.db import get_engine

    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub_db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The URL of an empty hub database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def hub_settings(tmp_path, hub_db_url):  # type: ignore[no-untyped-def]
    """An initialised hub home on the backend under test."""
    from central_hub.home import init_hub

    return init_hub(tmp_path / "hub", hub_db_url)


@pytest.fixture
def client(hub_settings):  # type: ignore[no-untyped-def]
    """A TestClient of the hub app."""
    from fastapi.testclient import TestClient

    from central_hub.app import create_app

    with TestClient(create_app(hub_settings)) as test_client:
        yield test_client


@dataclass
class Tokens:
    """Clear tokens of every role (two sites)."""

    hub_admin: str
    researcher: str
    searcher: str
    site_a: str
    site_b: str

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture
def tokens(hub_settings) -> Tokens:  # type: ignore[no-untyped-def]
    """Tokens for hub_admin, researcher, searcher and sites site-a (DE) / site-b (FR)."""
    from central_hub.auth.tokens import create_token
    from central_hub.catalog.crud import create_site
    from central_hub.db import session_factory

    with session_factory(hub_settings.database_url)() as session:
        clear = {
            role: create_token(session, role=role, name=f"{role}-user")[1]
            for role in ("hub_admin", "researcher", "searcher")
        }
        for name, country in (("site-a", "DE"), ("site-b", "FR")):
            site = create_site(session, name, country, 5)
            clear[name.replace("-", "_")] = create_token(session, role="site", name=name, site_id=site.id)[1]
        session.commit()
    return Tokens(**clear)


def counts(persons: Any, studies: Any = None, series: Any = None, instances: Any = None) -> dict[str, Any]:
    """A counts object; missing measures derive from ``persons`` when it is a number."""
    if isinstance(persons, int):
        studies = persons if studies is None else studies
        series = 2 * persons if series is None else series
        instances = 100 * persons if instances is None else instances
    return {
        "persons": persons,
        "studies": studies if studies is not None else persons,
        "series": series if series is not None else persons,
        "instances": instances if instances is not None else persons,
    }


CT_CHEST = {
    "key": "ct-chest",
    "modality": "CT",
    "body_part": "CHEST",
    "description": "CT chest imaging",
    # 130 - 62 - 55 = 13 >= 10: the "<10" cells cannot be derived by subtraction (complementary rule)
    "totals": counts(130),
    "facets": {
        "sex": {"female": counts(62), "male": counts(55), "unknown": counts("<10")},
        "age_band": {"40-49": counts(20), "50-59": counts(40), "60-69": counts(57), "90+": counts("<10")},
        "condition": {"Non-small cell lung cancer": counts(44)},
        "study_year_band": {"2015-2019": counts(70), "2020-2024": counts(50)},
    },
}
MR_BRAIN = {
    "key": "mr-brain",
    "modality": "MR",
    "body_part": "BRAIN",
    "description": "MR brain imaging",
    "totals": counts(30),
    "facets": {
        "sex": {"female": counts(18), "male": counts(12)},
        "age_band": {"20-29": counts("<10"), "30-39": counts("suppressed"), "70-79": counts(15)},
        "study_year_band": {"2020-2024": counts(30)},
    },
}


def make_summary(
    site: str = "site-a", k: int = 10, collections: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A valid summary as JSON-ready dict (CT chest + MR brain by default)."""
    return {
        "schema_version": 1,
        "site": site,
        "floor_k": k,
        "collections": copy.deepcopy(collections if collections is not None else [CT_CHEST, MR_BRAIN]),
    }


@pytest.fixture
def published(client, tokens) -> Tokens:  # type: ignore[no-untyped-def]
    """site-a and site-b have each published a summary."""
    r = client.put("/summaries", json=make_summary("site-a"), headers=tokens.headers("site_a"))
    assert r.status_code == 200, r.text
    pet = {
        **CT_CHEST,
        "key": "pt-chest",
        "modality": "PT",
        "description": "PET chest imaging",
        "totals": counts(11),
        "facets": {"sex": {"female": counts("<10"), "male": counts("suppressed")}},
    }
    r = client.put(
        "/summaries",
        json=make_summary("site-b", collections=[CT_CHEST, pet]),
        headers=tokens.headers("site_b"),
    )
    assert r.status_code == 200, r.text
    return tokens


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_hub(hub_settings):  # type: ignore[no-untyped-def]
    """A real uvicorn server of the hub on a free loopback port; yields its base URL."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    env = {**os.environ, "HUB_HOME": str(hub_settings.home)}
    if hub_settings.db_url:
        env["HUB_DB_URL"] = hub_settings.db_url
    log = (hub_settings.home / "server.log").open("wb")
    # as an operator runs it: the console script `central-hub serve`
    cli = Path(sys.executable).with_name("central-hub")
    command = (
        [str(cli)] if cli.exists() else [sys.executable, "-c", "from central_hub.cli import main; main()"]
    )
    proc = subprocess.Popen(
        [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = (hub_settings.home / "server.log").read_text(errors="replace")
                raise RuntimeError(f"hub server did not start: {out[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
