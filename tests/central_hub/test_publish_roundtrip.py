"""site-node publish -> a real hub server on loopback -> search; the ledger matches what the hub stored."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import insert

pytestmark = pytest.mark.integration


def _cli_token(capsys, argv: list[str]) -> str:  # type: ignore[no-untyped-def]
    from central_hub.cli import main

    main(argv)
    return json.loads(capsys.readouterr().out)["token"]


def test_publish_round_trip_and_republish_after_withdrawal(live_hub, hub_settings, site_home, capsys) -> None:
    from site_node.cli import main as site_main
    from site_node.db import utcnow, withdrawal
    from site_node.home import open_site
    from tests.site_node.publish.conftest import cohort, write_patients

    home = ["--home", str(hub_settings.home)]
    site_token = _cli_token(capsys, ["site", "add", "site-a", "--country", "DE", "--json", *home])
    researcher = _cli_token(
        capsys, ["token", "create", "--role", "researcher", "--name", "ann", "--json", *home]
    )
    site = open_site(site_home)
    write_patients(site.engine, cohort(), site.settings.export_dir)

    site_main(["publish", "--home", str(site_home), "--hub", live_hub, "--token", site_token, "--json"])
    sent = json.loads(capsys.readouterr().out)
    assert sent["status"] == "sent" and sent["hub"]["collections"] == 2
    assert sent["hub"]["sha256"] == sent["sha256"]  # the hub hashed exactly the bytes the ledger recorded

    headers = {"Authorization": f"Bearer {researcher}"}
    body = httpx.get(f"{live_hub}/catalog/search", params={"modality": "MR"}, headers=headers).json()
    # 12 persons, published perturbed by the cell-key method (base 5): 10 or 15, never 12
    assert body["results"][0]["persons"]["display"] in ("10", "15")

    with site.engine.begin() as conn:
        conn.execute(insert(withdrawal).values(patient_pseudonym="PMR0000000000000", withdrawn_at=utcnow()))
    site_main(["publish", "--home", str(site_home), "--hub", live_hub, "--token", site_token])
    capsys.readouterr()
    body = httpx.get(f"{live_hub}/catalog/search", params={"modality": "MR"}, headers=headers).json()
    assert body["results"][0]["persons"]["display"] in ("10", "15")  # 11 persons, perturbed
    assert body["total_collections"] == 1

    site_main(["ledger", "--home", str(site_home), "--json"])
    ledger = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in ledger] == ["sent", "sent"]
    assert all(r["destination"] == f"{live_hub}/summaries" for r in ledger)


def test_a_refused_publish_is_still_in_the_ledger(live_hub, site_home, capsys) -> None:
    from site_node.cli import main as site_main

    with pytest.raises(SystemExit) as exc:
        site_main(["publish", "--home", str(site_home), "--hub", live_hub, "--token", "fh_" + "x" * 43])
    assert exc.value.code == 69
    site_main(["ledger", "--home", str(site_home), "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "failed" and row["note"] == "HTTP 401"
