"""Computing the cohort summary from the site's OMOP tables, the dry run and the ledger."""

from __future__ import annotations

import hashlib
import json
import re

from sqlalchemy import insert

from common.schemas import CohortSummary
from site_node.publish.summary import build_summary, summary_bytes


def _collections(site) -> dict:  # type: ignore[no-untyped-def]
    return {c.key: c for c in build_summary(site).collections}


def _near(shown: object, true: int, base: int = 5) -> bool:
    """A count perturbed by the cell-key method: a multiple of the base less than one base away."""
    return isinstance(shown, int) and shown % base == 0 and abs(shown - true) < base


def test_collections_group_by_modality_and_body_part(omop_site) -> None:
    colls = _collections(omop_site)
    assert set(colls) == {"ct-chest", "mr-brain"}
    ct = colls["ct-chest"]
    assert (ct.modality, ct.body_part, ct.description) == ("CT", "CHEST", "CT chest imaging")
    assert ct.totals.model_dump() == {"persons": 30, "studies": 30, "series": 60, "instances": 4500}
    # multiples of the base (5) are published exactly, others rounded up or down by their cell key
    assert _near(colls["mr-brain"].totals.persons, 12)


def test_small_cells_and_their_complements_are_suppressed(omop_site) -> None:
    colls = _collections(omop_site)
    ct_sex = colls["ct-chest"].facets["sex"]
    assert ct_sex["male"].persons == "<10"
    assert ct_sex["female"].persons == "suppressed"  # else 30 - 27 reveals the 3 men
    mr_sex = colls["mr-brain"].facets["sex"]
    assert mr_sex["male"].persons == "<10" and mr_sex["female"].persons == "<10"
    assert colls["ct-chest"].facets["condition"]["Non-small cell lung cancer"].persons == 15
    assert _near(colls["mr-brain"].facets["condition"]["Type 2 diabetes mellitus"].persons, 12)


def test_age_and_year_bands(omop_site) -> None:
    ct = _collections(omop_site)["ct-chest"]
    assert set(ct.facets["study_year_band"]) == {"2015-2019"}
    assert set(ct.facets["age_band"]) <= {"40-49", "50-59", "60-69"}


def test_no_identifier_uid_date_or_small_number_leaves(omop_site) -> None:
    payload = summary_bytes(build_summary(omop_site))
    text = payload.decode()
    assert "PCT" not in text and "PMR" not in text and "2.25." not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    for collection in json.loads(payload)["collections"]:
        for number in re.findall(r":(\d+)[,}]", json.dumps(collection)):
            assert int(number) == 0 or int(number) >= 10
    CohortSummary.model_validate_json(payload)  # the hub's own schema accepts it


def test_withdrawn_patient_disappears_from_the_next_summary(omop_site) -> None:
    from site_node.db import utcnow, withdrawal

    before = _collections(omop_site)["mr-brain"].totals
    assert before == _collections(omop_site)["mr-brain"].totals  # same content, same perturbation
    with omop_site.engine.begin() as conn:
        conn.execute(insert(withdrawal).values(patient_pseudonym="PMR0000000000000", withdrawn_at=utcnow()))
    after = _collections(omop_site)["mr-brain"].totals
    assert _near(before.persons, 12) and _near(after.persons, 11) and _near(after.series, 11)


def test_site_floor_applies(site_home) -> None:
    from site_node.home import open_site
    from tests.site_node.publish.conftest import cohort, write_patients

    toml = site_home / "site.toml"
    toml.write_text(toml.read_text().replace("floor_k = 10", "floor_k = 40"))
    site = open_site(site_home)
    write_patients(site.engine, cohort())
    summary = build_summary(site)
    assert summary.floor_k == 40
    ct = next(c for c in summary.collections if c.key == "ct-chest")
    assert ct.totals.persons == "<40" and ct.totals.series == 60 and ct.totals.instances is None


def test_dry_run_prints_exactly_the_bytes_recorded_in_the_ledger(omop_site, capsysbinary) -> None:
    from site_node.cli import main

    main(["publish", "--home", str(omop_site.settings.home), "--dry-run"])
    out = capsysbinary.readouterr().out.rstrip(b"\n")
    assert json.loads(out)["site"] == "site-a"
    main(["ledger", "--home", str(omop_site.settings.home), "--json"])
    rows = json.loads(capsysbinary.readouterr().out)
    assert rows[-1]["status"] == "dry_run" and rows[-1]["kind"] == "cohort_summary"
    assert rows[-1]["sha256"] == hashlib.sha256(out).hexdigest() and rows[-1]["size_bytes"] == len(out)


def test_publish_without_hub_or_token_is_a_config_error(omop_site, capsys) -> None:
    import pytest

    from site_node.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["publish", "--home", str(omop_site.settings.home)])
    assert exc.value.code == 78 and "hub_url" in capsys.readouterr().err


def test_empty_site_publishes_no_collections(site_home) -> None:
    from site_node.home import open_site

    assert build_summary(open_site(site_home)).collections == []
