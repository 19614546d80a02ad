"""The pull journal and node table on SQLite and PostgreSQL (migration 0006)."""

from __future__ import annotations

import pytest

from site_node.home import init_home, open_site
from site_node.pacs import journal as J
from site_node.pacs.nodes import PacsNode, add_node, get_node, list_nodes, node_aets


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path):
    db_url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None
    home = tmp_path / "home"
    init_home(home, "site-a", db_url=db_url)
    return open_site(home)


def test_nodes_and_pull_journal_round_trip(site):
    add_node(site.engine, PacsNode("a", "AET_A", "h", 104, None, {"kind": "none"}))
    assert [n.name for n in list_nodes(site.engine)] == ["a"] and node_aets(site.engine) == ["AET_A"]
    assert get_node(site.engine, "a").port == 104
    pz = site.pseudonymizer()
    key = pz.pseudonym("accession", "ACC-1")
    J.set_state(site.engine, "a", key, "", J.NOT_FOUND)
    assert J.accession_state(site.engine, "a", key) == {"": "not_found"}
    study = pz.uid("1.2.3")
    J.set_state(site.engine, "a", key, study, J.PENDING, instances=3)
    J.set_state(site.engine, "a", key, study, J.DONE, instances=3)
    assert J.accession_state(site.engine, "a", key) == {study: "done"}  # the not_found row is gone
    assert J.pull_counts(site.engine, "a") == {"done": 1}
