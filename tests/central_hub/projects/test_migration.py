"""Hub revision 0104_projects upgrades a database made before projects (hub_job gains its project)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

OLD_COLUMNS = ", ".join(
    [
        "id VARCHAR(32) PRIMARY KEY",
        "template VARCHAR(64) NOT NULL",
        "params JSON NOT NULL",
        "sites JSON NOT NULL",
        "state VARCHAR(16) NOT NULL",
        "round INTEGER",
        "message TEXT",
        "refusals JSON NOT NULL",
        "site_metrics JSON NOT NULL",
        "runner VARCHAR(16) NOT NULL",
        "nvflare_job_id VARCHAR(64)",
        "submitted_by VARCHAR(96) NOT NULL",
        "created_at DATETIME NOT NULL",
        "updated_at DATETIME NOT NULL",
    ]
)


def test_upgrade_from_0101_adds_the_project_tables_and_column(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    import central_hub.db as hub_db
    from central_hub.db import get_engine, upgrade_database

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = get_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(hub_db.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "0101_jobs")
    with engine.begin() as conn:  # hub_job as an older release created it
        conn.execute(text("DROP TABLE hub_job"))
        conn.execute(text(f"CREATE TABLE hub_job ({OLD_COLUMNS})"))
        values = "'j1', 'seg3d', '{}', '[]', 'finished', NULL, NULL, '{}', '{}', 'sim', NULL, 'r:x', 'x', 'x'"
        conn.execute(text(f"INSERT INTO hub_job VALUES ({values})"))
    upgrade_database(url)
    insp = inspect(engine)
    assert "project" in {c["name"] for c in insp.get_columns("hub_job")}
    assert {"hub_project", "hub_project_member", "hub_access_request", "hub_access_decision"} <= set(
        insp.get_table_names()
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, project FROM hub_job")).all() == [("j1", None)]
