"""``central-hub`` CLI: init, site add, token create/list/revoke, status."""

from __future__ import annotations

import json

import pytest

from central_hub.cli import main


def _run(capsys, *argv: str) -> dict | list:  # type: ignore[no-untyped-def]
    main(list(argv))
    return json.loads(capsys.readouterr().out)


def test_init_site_token_status_cycle(tmp_path, capsys, monkeypatch) -> None:
    home = tmp_path / "hub"
    monkeypatch.setenv("HUB_HOME", str(home))  # HUB_HOME works instead of --home
    info = _run(capsys, "init", "--json")
    assert info["database"].startswith("sqlite:///") and (home / "hub.toml").exists()
    site = _run(capsys, "site", "add", "site-a", "--country", "de", "--json")
    assert site["token"].startswith("fh_") and len(site["token"]) > 40
    user = _run(capsys, "token", "create", "--role", "searcher", "--name", "sam", "--json")
    listed = _run(capsys, "token", "list", "--json")
    assert {t["role"] for t in listed} == {"site", "searcher"}
    assert all(site["token"] not in json.dumps(t, default=str) for t in listed)
    main(["token", "revoke", str(user["id"])])
    assert "revoked" in capsys.readouterr().out
    status = _run(capsys, "status", "--json")
    assert status["tokens"] == 1 and status["sites"][0]["name"] == "site-a"
    assert status["sites"][0]["country"] == "DE" and status["sites"][0]["last_published_at"] is None


def test_plain_output_prints_the_token_alone_on_stdout(tmp_path, capsys) -> None:
    home = str(tmp_path / "hub")
    main(["init", "--home", home])
    capsys.readouterr()
    main(["token", "create", "--role", "hub_admin", "--name", "ops", "--home", home])
    out = capsys.readouterr()
    assert out.out.strip().startswith("fh_") and "shown only once" in out.err


@pytest.mark.parametrize(
    ("argv", "code", "field"),
    [
        (["token", "create", "--role", "site", "--name", "x"], 65, "role"),
        (["site", "add", "Bad Name"], 65, "name"),
        (["site", "add", "ok", "--country", "Germany"], 65, "country"),
        (["site", "add", "ok", "--floor-k", "3"], 65, "floor_k"),
        (["token", "revoke", "999"], 66, "token_id"),
    ],
)
def test_bad_arguments_exit_with_the_error_code(tmp_path, capsys, argv, code, field) -> None:
    home = str(tmp_path / "hub")
    main(["init", "--home", home])
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--home", home])
    assert exc.value.code == code and f"[{field}]" in capsys.readouterr().err


def test_uninitialised_home_is_a_config_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["status", "--home", str(tmp_path / "nothing")])
    assert exc.value.code == 78


def test_duplicate_site_is_a_conflict(tmp_path, capsys) -> None:
    home = str(tmp_path / "hub")
    main(["init", "--home", home])
    main(["site", "add", "site-a", "--home", home])
    with pytest.raises(SystemExit) as exc:
        main(["site", "add", "site-a", "--home", home])
    assert exc.value.code == 75


@pytest.mark.integration
def test_serve_with_several_workers_answers_on_loopback(tmp_path, capsys) -> None:
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from tests.central_hub.conftest import free_port

    home = str(tmp_path / "hub")
    main(["init", "--home", home])
    port = free_port()
    cli = Path(sys.executable).with_name("central-hub")
    proc = subprocess.Popen(
        [str(cli), "serve", "--home", home, "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/catalog/search").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
