"""Catalog API: publishing, replacement, defence in depth, faceted search, display of suppressed cells."""

from __future__ import annotations

import json

import pytest

from tests.central_hub.conftest import CT_CHEST, counts, make_summary


def _search(client, tokens, role: str = "researcher", **params):  # type: ignore[no-untyped-def]
    r = client.get("/catalog/search", params=params, headers=tokens.headers(role))
    assert r.status_code == 200, r.text
    return r.json()


def test_publish_then_search_returns_every_collection(client, published) -> None:
    body = _search(client, published)
    assert body["total_collections"] == 4
    assert {(c["site"], c["key"]) for c in body["results"]} == {
        ("site-a", "ct-chest"),
        ("site-a", "mr-brain"),
        ("site-b", "ct-chest"),
        ("site-b", "pt-chest"),
    }
    sites = {s["site"]: s for s in body["sites"]}
    assert sites["site-a"]["persons"] == {"value": 160, "display": "160", "lower_bound": False}
    assert sites["site-a"]["collections"] == 2


def test_suppressed_cells_are_shown_as_below_floor_and_never_summed(client, published) -> None:
    body = _search(client, published, site="site-b")
    sex = {v["value"]: v["persons"] for v in body["facets"]["sex"]}
    # site-b: CT female 62 + PT female "<10" -> a lower bound, not a number; the hidden cell holds
    # at least 1 person (zero is published as 0), so the bound is 63
    assert sex["female"] == {"value": 63, "display": "≥ 63", "lower_bound": True}
    assert sex["male"]["display"] == "≥ 56"
    assert sex["unknown"] == {"value": None, "display": "<10", "lower_bound": False}


def test_filters_are_or_within_a_facet_and_and_across(client, published) -> None:
    assert _search(client, published, modality=["CT"])["total_collections"] == 2
    assert _search(client, published, modality=["CT", "MR"])["total_collections"] == 3
    body = _search(client, published, modality=["CT", "MR"], country=["FR"])
    assert [(c["site"], c["modality"]) for c in body["results"]] == [("site-b", "CT")]


def test_facet_counts_follow_the_filter_and_stay_disjunctive(client, published) -> None:
    everything = _search(client, published)
    ct_only = _search(client, published, modality=["CT"])
    modality = {v["value"]: v for v in ct_only["facets"]["modality"]}
    assert set(modality) == {"CT", "MR", "PT"}  # other values of the filtered facet stay visible
    assert modality["CT"]["selected"] and not modality["MR"]["selected"]
    sex_all = {v["value"]: v["persons"]["display"] for v in everything["facets"]["sex"]}
    sex_ct = {v["value"]: v["persons"]["display"] for v in ct_only["facets"]["sex"]}
    assert sex_ct["female"] == "124" and sex_all["female"] != sex_ct["female"]


def test_matched_cells_of_selected_breakdown_values(client, published) -> None:
    body = _search(client, published, sex=["female"], modality=["MR"], detail="true")
    (coll,) = body["results"]
    assert coll["matched"]["sex"]["female"]["persons"]["display"] == "18"
    (brief,) = _search(client, published, sex=["female"], modality=["MR"])["results"]
    assert "matched" not in brief and brief["persons"] == coll["persons"]


def test_facet_limit_keeps_the_top_values_and_the_selected_ones(client, published) -> None:
    everything = _search(client, published, facet_limit=100)
    modality = everything["facets"]["modality"]
    assert [v["value"] for v in modality] == ["CT", "MR", "PT"] and everything["facets_more"]["modality"] == 0
    top = _search(client, published, facet_limit=1)
    assert [v["value"] for v in top["facets"]["modality"]] == ["CT"]
    assert top["facets_more"]["modality"] == 2
    assert top["facets"]["modality"][0] == modality[0]
    picked = _search(client, published, facet_limit=1, modality=["PT"])
    shown = {v["value"]: v for v in picked["facets"]["modality"]}
    assert set(shown) == {"CT", "PT"} and shown["PT"]["selected"] and picked["facets_more"]["modality"] == 1
    assert sum(v["collections"] for v in everything["facets"]["site"]) == 4
    r = client.get("/catalog/search", params={"facet_limit": 0}, headers=published.headers("researcher"))
    assert r.status_code == 422


def test_free_text_pagination_and_sorting(client, published) -> None:
    assert _search(client, published, q="brain")["total_collections"] == 1
    assert _search(client, published, q="100%_")["total_collections"] == 0
    first = _search(client, published, page_size=3, sort="-persons")
    second = _search(client, published, page_size=3, page=2, sort="-persons")
    assert [c["persons"]["value"] for c in first["results"]] == [130, 130, 30]
    assert len(second["results"]) == 1 and second["results"][0]["key"] == "pt-chest"
    by_site = _search(client, published, sort="site")
    assert [c["site"] for c in by_site["results"]][:2] == ["site-a", "site-a"]


def test_republish_replaces_the_previous_summary(client, published) -> None:
    only_ct = make_summary("site-a", collections=[CT_CHEST])
    r = client.put("/summaries", json=only_ct, headers=published.headers("site_a"))
    assert r.status_code == 200 and r.json()["collections"] == 1
    body = _search(client, published, site="site-a")
    assert [c["key"] for c in body["results"]] == ["ct-chest"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s["collections"][0]["totals"].update(persons=3), "collections.0.totals.persons"),
        (lambda s: s["collections"][0]["facets"]["sex"].update(other=counts(2)), "facets.sex"),
        (lambda s: s["collections"][0].update(patient_ids=["x"]), "patient_ids"),
        (lambda s: s.update(extra=1), "extra"),
        (lambda s: s["collections"][0]["facets"].update(ethnicity={}), "ethnicity"),
        (lambda s: s["collections"][0]["totals"].update(persons="<5"), "declared floor_k"),
        (lambda s: s.update(floor_k=3), "floor_k"),
    ],
    ids=[
        "below-floor",
        "below-floor-facet",
        "unknown-field",
        "unknown-top-field",
        "unknown-facet",
        "wrong-marker",
        "floor-too-low",
    ],
)
def test_bad_summaries_are_refused_with_422_naming_the_field(client, tokens, mutate, field) -> None:
    summary = make_summary("site-a")
    mutate(summary)
    r = client.put("/summaries", json=summary, headers=tokens.headers("site_a"))
    assert r.status_code == 422
    assert field in r.text
    assert _search(client, tokens)["total_collections"] == 0  # nothing stored


def test_hub_refuses_a_floor_below_the_sites_registered_floor(client, tokens) -> None:
    r = client.post(
        "/sites", json={"name": "strict", "country": "NL", "floor_k": 11}, headers=tokens.headers("hub_admin")
    )
    assert r.status_code == 201
    token = r.json()["token"]
    r = client.put(
        "/summaries", json=make_summary("strict", k=10), headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 422 and r.json()["field"] == "floor_k"
    summary = json.loads(json.dumps(make_summary("strict", k=11)).replace('"<10"', '"<11"'))
    summary["collections"][0]["facets"]["age_band"]["40-49"] = counts(10, 11, 11, 11)
    r = client.put("/summaries", json=summary, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and "age_band" in r.json()["message"]
    summary["collections"][0]["facets"]["age_band"]["40-49"] = counts(11)
    r = client.put("/summaries", json=summary, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_malformed_and_oversized_payloads(client, tokens, hub_settings) -> None:
    headers = {**tokens.headers("site_a"), "Content-Type": "application/json"}
    r = client.put("/summaries", content=b"{not json", headers=headers)
    assert r.status_code == 422
    big = b'{"x": "' + b"a" * (hub_settings.max_payload_bytes + 10) + b'"}'
    r = client.put("/summaries", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_unknown_facet_in_search_is_422(client, tokens) -> None:
    r = client.get("/catalog/search", params={"ethnicity": "x"}, headers=tokens.headers("searcher"))
    assert r.status_code == 422 and r.json()["field"] == "ethnicity"
    r = client.get("/catalog/search", params={"sort": "bogus"}, headers=tokens.headers("searcher"))
    assert r.status_code == 422


def test_site_detail_lists_every_cell(client, published) -> None:
    r = client.get("/catalog/sites/site-a", headers=published.headers("researcher"))
    assert r.status_code == 200
    detail = r.json()
    ct = next(c for c in detail["collections"] if c["key"] == "ct-chest")
    assert ct["facets"]["sex"]["unknown"]["persons"]["display"] == "<10"
    mr = next(c for c in detail["collections"] if c["key"] == "mr-brain")
    assert mr["facets"]["age_band"]["30-39"]["persons"]["display"] == "suppressed"
    assert client.get("/catalog/sites/nope", headers=published.headers("researcher")).status_code == 404


def test_every_search_and_change_is_audited(client, published) -> None:
    _search(client, published, role="searcher", modality=["CT"])
    r = client.get("/audit", headers=published.headers("hub_admin"))
    assert r.status_code == 200
    rows = r.json()
    search = next(row for row in rows if row["action"] == "catalog.search")
    assert search["actor"] == "searcher:searcher-user" and search["detail"]["filters"] == {"modality": ["CT"]}
    assert {row["action"] for row in rows} >= {"summary.publish", "catalog.search"}
    only = client.get("/audit", params={"action": "summary.publish"}, headers=published.headers("hub_admin"))
    assert {row["action"] for row in only.json()} == {"summary.publish"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page_size": "101"}, "page_size"),
        ({"page": "x"}, "page"),
        ({"facet_limit": "1001"}, "facet_limit"),
        ({"detail": "maybe"}, "detail"),
        ({"q": "a" * 201}, "q"),
        ({"sort": "site\n"}, "sort"),
        ({"sex": [f"v{i}" for i in range(51)]}, "sex"),
        ({"sex": "x" * 65}, "sex"),
    ],
    ids=["page", "page-size", "not-int", "facet-limit", "detail", "q", "sort", "many-values", "long-value"],
)
def test_bad_search_parameters_are_422_naming_the_field(client, tokens, params, field) -> None:
    r = client.get("/catalog/search", params=params, headers=tokens.headers("searcher"))
    assert r.status_code == 422 and r.json()["field"] == field


def test_search_parameters_stay_documented(client) -> None:
    spec = client.get("/openapi.json").json()
    names = {p["name"] for p in spec["paths"]["/catalog/search"]["get"]["parameters"]}
    assert names == {
        "q", "page", "page_size", "sort", "facet_limit", "detail",
        "modality", "body_part", "sex", "age_band", "condition", "study_year_band", "site", "country",
    }  # fmt: skip


def test_repeated_free_text_gives_the_same_answers_across_filters(client, published) -> None:
    """The free-text mask is remembered per catalog version; reuse must not leak between searches."""
    first = _search(client, published, q="imaging")["total_collections"]
    narrowed = _search(client, published, q="imaging", modality=["MR"])["total_collections"]
    again = _search(client, published, q="imaging")["total_collections"]
    assert first == again and 0 < narrowed < first


def test_a_revoked_token_cannot_search_and_a_site_token_may_not(client, published) -> None:
    r = client.get("/catalog/search", headers=published.headers("site_a"))
    assert r.status_code == 403
    me = client.get("/tokens", headers=published.headers("hub_admin")).json()
    searcher = next(t for t in me if t["role"] == "searcher")
    revoke = client.delete(f"/tokens/{searcher['id']}", headers=published.headers("hub_admin"))
    assert revoke.status_code in (200, 204)
    r = client.get("/catalog/search", headers=published.headers("searcher"))
    assert r.status_code == 401 and r.json()["field"] == "Authorization"
    assert client.get("/catalog/search").status_code == 401


def test_the_web_cookie_token_works_for_the_search_api(client, published) -> None:
    client.cookies.set("hub_token", published.researcher)
    try:
        r = client.get("/catalog/search", params={"modality": "CT"})
    finally:
        client.cookies.clear()
    assert r.status_code == 200 and r.json()["filters"] == {"modality": ["CT"]}


def test_keep_alive_connections_are_recycled_after_the_configured_requests(hub_settings) -> None:
    """Every Nth request on one connection answers ``Connection: close`` (spreads clients over workers)."""
    from fastapi.testclient import TestClient

    from central_hub.app import create_app

    settings = hub_settings.model_copy(update={"keepalive_requests": 3})
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/healthz").headers.get("connection") for _ in range(6)]
    assert answers == [None, None, "close", None, None, "close"]
