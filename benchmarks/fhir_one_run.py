"""Does one FHIR run ingest what two runs do? Measured on exports from other producers.

For each source folder (and for all of them together) two fresh site homes with the same key are
made: home A ingests the folder once, home B twice. The script prints, per OMOP table, the rows of
A and of B and whether their contents are identical, the quarantine by reason, and whether any
file or folder name under the home (outside ``phi/``) contains a source file name. Data are not
shipped: fetch public exports (FHIR specification examples, implementation-guide examples, EHR or
server fixtures) into folders and pass them.

    .venv/bin/python benchmarks/fhir_one_run.py DIR [DIR...] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _tables(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    from sqlalchemy import select

    from site_node.clinical.omop.schema import CDM_TABLES
    from site_node.home import open_site

    skip = {
        "concept",
        "vocabulary",
        "domain",
        "concept_class",
        "relationship",
        "concept_relationship",
        "concept_ancestor",
        "concept_synonym",
        "drug_strength",
        "cdm_source",
    }
    site = open_site(home, upgrade=False)
    with site.engine.connect() as conn:
        return {
            name: sorted(tuple(str(v) for v in row) for row in conn.execute(select(table)))
            for name, table in CDM_TABLES.items()
            if name not in skip
        }


def _leaks(home: Path, sources: list[Path]) -> list[str]:
    """Names under ``home`` (outside phi/) that contain a source file's name (without suffix)."""
    stems = {p.name.split(".")[0] for src in sources for p in src.rglob("*") if p.is_file()}
    stems = {s for s in stems if len(s) >= 6}
    found = []
    for root, dirs, files in os.walk(home):
        if Path(root) == home and "phi" in dirs:
            dirs.remove("phi")
        found += [n for n in dirs + files if any(s in n for s in stems)]
    return found


def measure(label: str, sources: list[Path], workers: int) -> dict[str, Any]:
    """One run in home A, two runs in home B (same key); compare the OMOP rows."""
    from site_node.clinical.fhir.ingest import ingest_fhir
    from site_node.home import init_home, open_site

    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        init_home(a, "site-a")
        init_home(b, "site-a")
        shutil.copy(a / "phi" / "site.key", b / "phi" / "site.key")
        once = ingest_fhir(open_site(a), sources, workers=workers).to_dict()
        ingest_fhir(open_site(b), sources, workers=workers)
        twice = ingest_fhir(open_site(b), sources, workers=workers).to_dict()
        rows_a, rows_b = _tables(a), _tables(b)
        return {
            "label": label,
            "files": once["files"] + once["files_skipped"] + once.get("files_duplicate", 0),
            "files_duplicate": once.get("files_duplicate", 0),
            "resources_read": once["resources_read"],
            "rows_one_run": {k: len(v) for k, v in rows_a.items() if v},
            "rows_two_runs": {k: len(v) for k, v in rows_b.items() if v},
            "identical": rows_a == rows_b,
            "second_run_new_rows": twice["rows"],
            "quarantined": once["quarantined"]["by_reason"],
            "names_with_source_names": _leaks(a, sources) + _leaks(b, sources),
        }


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = [(src.name, [src]) for src in args.sources]
    if len(args.sources) > 1:
        runs.append(("all together", list(args.sources)))
    results = []
    for label, sources in runs:
        try:
            results.append(measure(label, sources, args.workers))
        except Exception as exc:  # a crashed run is a result too (the code before the fix crashed)
            reason = str(getattr(exc, "orig", "") or "")[:80]  # a database error names constraints only
            results.append({"label": label, "crashed": f"{type(exc).__name__} {reason}".strip()})
    if args.json:
        print(json.dumps(results, indent=1, sort_keys=True))
        return
    print(
        f"{'export':16} {'files':>5} {'dup':>4} {'read':>6} {'rows 1 run':>10} {'rows 2 runs':>11} "
        "identical  2nd-run-new  names"
    )
    for r in results:
        if "crashed" in r:
            print(f"{r['label']:16} the run crashed: {r['crashed']}")
            continue
        print(
            f"{r['label']:16} {r['files']:>5} {r['files_duplicate']:>4} {r['resources_read']:>6} "
            f"{sum(r['rows_one_run'].values()):>10} {sum(r['rows_two_runs'].values()):>11} "
            f"{r['identical']!s:>9}  {sum(r['second_run_new_rows'].values()):>11}  "
            f"{len(r['names_with_source_names'])}"
        )
        print(f"{'':16} rows: {r['rows_one_run']}")
        print(f"{'':16} quarantined: {r['quarantined']}")


if __name__ == "__main__":
    main()
