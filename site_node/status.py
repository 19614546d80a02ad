"""``site-node status``: what a site admin checks first — key, database, counts, last runs, ledger."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text

from site_node.db import outbound_ledger, run_audit, withdrawal
from site_node.home import SiteContext
from site_node.ingest.quarantine import Quarantine
from site_node.keycheck import key_check_status

log = logging.getLogger(__name__)

_TRACKED_COMMANDS = ("deid", "fhir", "csv", "curate", "publish", "withdraw")


def _key_status(site: SiteContext) -> dict[str, Any]:
    """Key file, its check value against the stored ones, and the PHI folder's mode."""
    try:
        check = key_check_status(site.settings, site.engine)
    except Exception as exc:  # the stored check value is in the database: report, don't crash
        log.warning("key check failed: %s", type(exc).__name__)
        return {"ok": False, "problem": f"key check could not run ({type(exc).__name__})", "check": "failed"}
    if not check["ok"]:
        return check
    phi_mode = site.settings.phi_dir.stat().st_mode & 0o777
    if phi_mode & 0o077:
        return {**check, "ok": False, "problem": "phi/ folder is accessible by group or others; chmod 700 it"}
    return check


def _export_counts(export: Path) -> dict[str, int]:
    root = export / "dicom"
    counts = {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    if not root.is_dir():
        return counts
    for patient in (p for p in root.iterdir() if p.is_dir()):
        counts["patients"] += 1
        for study in (s for s in patient.iterdir() if s.is_dir()):
            counts["studies"] += 1
            for series in (r for r in study.iterdir() if r.is_dir()):
                counts["series"] += 1
                counts["instances"] += sum(1 for f in series.iterdir() if f.suffix == ".dcm")
    return counts


def _last_runs(conn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for command in _TRACKED_COMMANDS:
        row = conn.execute(
            select(run_audit.c.started_at, run_audit.c.ended_at, run_audit.c.status)
            .where(run_audit.c.command == command)
            .order_by(run_audit.c.started_at.desc())
            .limit(1)
        ).first()
        out[command] = (
            None
            if row is None
            else {
                "started_at": str(row.started_at),
                "ended_at": str(row.ended_at) if row.ended_at else None,
                "status": row.status,
            }
        )
    return out


def _omop_persons(conn: Any) -> int | None:
    if not inspect(conn).has_table("person"):
        return None
    return int(conn.execute(text("SELECT COUNT(*) FROM person")).scalar_one())


def _inference(conn: Any, last: int = 5) -> dict[str, Any] | None:
    """Clinical inference runs: counts, latency p50/p95 (last instance received -> results stored),
    and the newest runs by study pseudonym."""
    from site_node.models.tables import inference_run

    if not inspect(conn).has_table("inference_run"):
        return None
    rows = conn.execute(select(inference_run).order_by(inference_run.c.id.desc())).all()
    latencies = sorted(r.latency_s for r in rows if r.status == "completed" and r.latency_s is not None)

    def percentile(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(round(q * (len(latencies) - 1))))], 2)

    return {
        "completed": sum(r.status == "completed" for r in rows),
        "failed": sum(r.status == "failed" for r in rows),
        "superseded": sum(r.status == "superseded" for r in rows),
        "latency_p50_s": percentile(0.5),
        "latency_p95_s": percentile(0.95),
        "last": [
            {
                "study": r.study_pseudonym,
                "model": f"{r.model_name}:{r.model_version}",
                "trigger": r.trigger,
                "status": r.status,
                "latency_s": None if r.latency_s is None else round(r.latency_s, 2),
                "compute_s": None if r.compute_s is None else round(r.compute_s, 2),
                "stored_at": str(r.stored_at) if r.stored_at else None,
            }
            for r in rows[:last]
        ],
    }


def _quarantine_counts(folder: Path) -> dict[str, int]:
    """Entries in the quarantine by reason (every stage; reason codes only)."""
    return dict(sorted(Counter(e.reason for e in Quarantine(folder).entries()).items()))


def site_status(site: SiteContext) -> dict[str, Any]:
    """Collect the node's status; never raises for an unhealthy part, reports it instead."""
    settings = site.settings
    status: dict[str, Any] = {
        "site_id": settings.site_id,
        "home": str(settings.home),
        "floor_k": settings.floor_k,
        "key": _key_status(site),
        "approved_jobs": sorted(settings.approved_jobs),
        "export": _export_counts(settings.export_dir),
        "quarantined": _quarantine_counts(settings.quarantine_dir),
    }
    try:
        with site.engine.connect() as conn:
            ledger = conn.execute(
                select(func.count(), func.coalesce(func.sum(outbound_ledger.c.size_bytes), 0))
            ).one()
            pending = conn.execute(
                select(func.count()).select_from(outbound_ledger).where(outbound_ledger.c.status == "pending")
            ).scalar_one()
            status["database"] = {"ok": True, "problem": None}
            status["last_runs"] = _last_runs(conn)
            # pending: written ahead, outcome never recorded (the process died while sending)
            status["ledger"] = {"entries": int(ledger[0]), "bytes": int(ledger[1]), "pending": int(pending)}
            status["withdrawn_patients"] = int(
                conn.execute(select(func.count()).select_from(withdrawal)).scalar_one()
            )
            status["omop_persons"] = _omop_persons(conn)
            status["inference"] = _inference(conn)
    except Exception as exc:  # a broken database is a status to report, not a crash
        log.warning("database check failed: %s", type(exc).__name__)
        status["database"] = {"ok": False, "problem": f"database unreachable ({type(exc).__name__})"}
    status["healthy"] = bool(status["key"]["ok"] and status["database"]["ok"])
    return status
