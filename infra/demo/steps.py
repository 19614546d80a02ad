"""The demo's steps, in order. Each one calls a public command or API and prints what it did."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from infra.demo.runner import Demo, console

STYLES = "abc"


def _style(index: int) -> str:
    return STYLES[index % len(STYLES)]


def generate_hospitals(demo: Demo) -> None:
    """Step 1: one synthetic hospital export per site (styles a, b, c cycle)."""
    table = Table("site", "style", "patients", "studies", "series", "instances", "FHIR resources")
    for i, name in enumerate(demo.sites):
        out = demo.workdir / "exports" / name
        summary = demo.cli("site-node", "synth", str(out), "--patients", str(demo.patients),
                           "--seed", str(demo.seed + i), "--site-style", _style(i), "--json", json_out=True)
        demo.state.setdefault("synth", {})[name] = summary
        fhir_total = sum((summary.get("fhir") or {}).values())
        table.add_row(name, _style(i), *(str(summary.get(k, "")) for k in
                                         ("patients", "studies", "series", "instances")), str(fhir_total))
    console.print(table)


def _home(demo: Demo, name: str) -> str:
    return str(demo.workdir / "sites" / name)


def site_pipeline(demo: Demo) -> None:
    """Step 2: per site: init, de-identify DICOM, FHIR + CSV into OMOP, imaging tables, QC report, curate."""
    table = Table("site", "DICOM written", "quarantined", "files/s", "OMOP persons", "OMOP rows",
                  "unmapped codes", "image series", "curated train/val")
    for i, name in enumerate(demo.sites):
        export = demo.workdir / "exports" / name
        home = _home(demo, name)
        truth_system = demo.state["synth"][name].get("mrn_system")
        demo.cli("site-node", "init", "--home", home, "--site-id", name, "--country", "XX",
                 *(["--mrn-system", truth_system] if truth_system else []))
        deid = demo.cli("site-node", "deid", str(export / "dicom"), "--home", home, "--json", json_out=True)
        fhir = demo.cli("site-node", "fhir", str(export / "fhir"), "--home", home, "--json", json_out=True)
        demo.cli("site-node", "csv", str(export / "crf" / "case_report_form.csv"), "--dictionary",
                 str(export / "crf" / "dictionary.toml"), "--home", home, "--json", json_out=True)
        images = demo.cli("site-node", "omop", "sync-images", "--home", home, "--json", json_out=True)
        curate = demo.cli("site-node", "curate", "--home", home, "--json", json_out=True)
        demo.state.setdefault("sites", {})[name] = {"deid": deid, "fhir": fhir, "curate": curate}
        quarantined = ", ".join(f"{k} {v}" for k, v in deid.get("quarantined", {}).items()) or "0"
        counts = curate.get("counts", {})
        table.add_row(name, str(deid["written"]), quarantined, f"{deid.get('files_per_s', 0):.0f}",
                      str(fhir.get("persons")), str(sum(fhir.get("rows", {}).values())),
                      str(fhir.get("unmapped", {}).get("total", 0)), str(images.get("rows", {}).get(
                          "image_occurrence", 0)), f"{counts.get('training', 0)}/{counts.get('validation', 0)}")
    console.print(table)


def plan(demo: Demo) -> list[tuple[str, Callable[[], None]]]:
    """The ordered steps of this build of the demo."""
    return [
        ("Generate synthetic hospitals", lambda: generate_hospitals(demo)),
        ("Site nodes: de-identify, FHIR/CSV to OMOP, imaging tables, curate", lambda: site_pipeline(demo)),
    ]


def print_timings(demo: Demo, total: float) -> None:
    """Final table: every step and its wall time."""
    table = Table("step", "seconds", title="Demo finished")
    for title, seconds in demo.timings:
        table.add_row(title, f"{seconds:.1f}")
    table.add_row("[bold]total", f"[bold]{total:.1f}")
    console.print(table)
    console.print(f"Everything the demo wrote is under {demo.workdir}")


__all__ = ["plan", "print_timings", "Any"]
