"""Pooling the sites' fedquery answers at the hub: a table of counts and Kaplan-Meier curves.

Every site answer is validated again (:class:`common.schemas.cohort_query.QueryResult`: no count
between 1 and k-1) and its life table checked with the same rule the site applies
(:func:`common.survival.check_table`); an answer that fails is dropped with the reason. Pooled
counts add the released numbers only; a cell with hidden parts is a lower bound. The pooled curve
merges the sites' tables to a common width and checks the rule again (coarsening further).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.schemas.cohort_query import QueryResult
from common.survival import check_table, km_curve, pool_tables

RESULTS_FILE = "fedquery_results.json"
QUERY_FILE = "query.json"
QUERY_PNG = "query.png"


def read_results(workspace: Path) -> dict[str, Any]:
    """The server's per-site answers (``{}`` before any arrives)."""
    found = sorted(workspace.rglob(RESULTS_FILE)) if workspace.exists() else []
    return json.loads(found[0].read_text()) if found else {}


def _pool_cells(results: list[QueryResult], attr: str) -> dict[str, dict[str, int]]:
    cells: dict[str, dict[str, int]] = {}
    for result in results:
        for key, value in getattr(result, attr).items():
            cell = cells.setdefault(key, {"n": 0, "hidden_sites": 0})
            if isinstance(value, int):
                cell["n"] += value
            else:
                cell["hidden_sites"] += 1
    return dict(sorted(cells.items()))


def pool(answers: dict[str, Any]) -> dict[str, Any]:
    """Validate each site's answer and pool counts and survival tables."""
    sites: dict[str, Any] = {}
    valid: list[QueryResult] = []
    for site, entry in sorted(answers.items()):
        if "result" not in entry:
            sites[site] = {"refused": entry.get("refused") or entry.get("error") or "no answer"}
            continue
        try:
            result = QueryResult.model_validate(entry["result"])
        except ValidationError:
            sites[site] = {"refused": "the hub rejected this site's answer (a count below the floor)"}
            continue
        view = result.model_dump(mode="json")
        table = result.survival.model_dump(mode="json") if result.survival else None
        if table and table["rows"] and check_table(table["rows"], result.floor_k):
            table = {"width_days": None, "rows": [], "withheld": "rejected by the hub: breaks the step rule"}
            view["survival"] = table
        view["curve"] = km_curve(table["rows"]) if table and table["rows"] else []
        sites[site] = view
        valid.append(result.model_copy(update={"survival": table}))
    k = max((r.floor_k for r in valid), default=5)
    person_cells = _pool_cells([r.model_copy(update={"by_sex": {"all": r.persons}}) for r in valid], "by_sex")
    pooled: dict[str, Any] = {
        "floor_k": k,
        "persons": person_cells.get("all", {"n": 0, "hidden_sites": 0}),
        "by_sex": _pool_cells(valid, "by_sex"),
        "by_age_band": _pool_cells(valid, "by_age_band"),
    }
    tables = {r.site: r.survival for r in valid if r.survival}
    survival = pool_tables(tables, k) if tables else None
    pooled["survival"] = survival
    pooled["curve"] = km_curve(survival["rows"]) if survival and survival["rows"] else []
    return {"sites": sites, "pooled": pooled}


def _label(cell: dict[str, int]) -> str:
    return f"≥{cell['n']}" if cell["hidden_sites"] else str(cell["n"])


def table_rows(query: dict[str, Any]) -> list[dict[str, str]]:
    """Rows for the page's table: one per site and one pooled, persons and breakdowns as text."""
    rows = []
    for site, view in query["sites"].items():
        if "refused" in view:
            rows.append(
                {"site": site, "persons": "—", "by_sex": "", "by_age_band": "", "note": view["refused"]}
            )
            continue
        rows.append(
            {
                "site": site,
                "persons": str(view["persons"]),
                "by_sex": ", ".join(f"{k} {v}" for k, v in view["by_sex"].items()),
                "by_age_band": ", ".join(f"{k} {v}" for k, v in view["by_age_band"].items()),
                "note": (view.get("survival") or {}).get("withheld") or "",
            }
        )
    pooled = query["pooled"]
    rows.append(
        {
            "site": "pooled",
            "persons": _label(pooled["persons"]),
            "by_sex": ", ".join(f"{k} {_label(v)}" for k, v in pooled["by_sex"].items()),
            "by_age_band": ", ".join(f"{k} {_label(v)}" for k, v in pooled["by_age_band"].items()),
            "note": (pooled.get("survival") or {}).get("withheld") or "",
        }
    )
    return rows


def write_query_png(query: dict[str, Any], path: Path, title: str) -> Path:
    """Kaplan-Meier step curves, one per site and the pooled one (thicker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    curves = [(site, v.get("curve") or [], 1.2) for site, v in query["sites"].items()]
    curves.append(("pooled", query["pooled"].get("curve") or [], 2.5))
    for name, curve, width in curves:
        if curve:
            days = [0.0] + [p["day"] for p in curve]
            surv = [1.0] + [p["survival"] for p in curve]
            ax.step(days, surv, where="post", label=name, linewidth=width)
    ax.set_xlabel("days from index")
    ax.set_ylabel("survival (Kaplan-Meier)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    if any(c for _, c, _ in curves):
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_query_artifacts(folder: Path, workspace: Path, title: str) -> dict[str, Any] | None:
    """Pool the answers found under ``workspace`` into ``query.json`` and ``query.png`` in ``folder``."""
    answers = read_results(workspace)
    if not answers:
        return None
    query = pool(answers)
    (folder / QUERY_FILE).write_text(json.dumps(query, indent=2, default=str))
    write_query_png(query, folder / QUERY_PNG, title)
    return query
