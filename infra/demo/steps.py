"""The demo's steps, in order. Each one calls a public command or API and prints what it did."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.table import Table

from infra.demo.runner import Demo, DemoError, console

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise DemoError(f"{url} did not answer within {timeout:.0f} s")


def start_hub(demo: Demo) -> None:
    """Step 3a: hub on loopback (SQLite), sites registered, tokens issued."""
    hub_home = demo.workdir / "hub"
    port = _free_port()
    env = {"HUB_HOME": str(hub_home),
           "HUB_SIMULATOR_SITES": json.dumps({n: _home(demo, n) for n in demo.sites})}
    demo.state["hub_env"] = env
    demo.cli("central-hub", "init", env=env)
    for name in demo.sites:
        created = demo.cli("central-hub", "site", "add", name, "--country", "XX", "--json", env=env, json_out=True)
        demo.state.setdefault("site_tokens", {})[name] = created["token"]
    for role, holder in (("searcher", "sam-searcher"), ("researcher", "alice-researcher")):
        created = demo.cli("central-hub", "token", "create", "--role", role, "--name", holder, "--json",
                           env=env, json_out=True)
        demo.state[f"{role}_token"] = created["token"]
    demo.start("central-hub", "serve", "--port", str(port), log_name="hub", env=env)
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/healthz")
    demo.state["hub_url"] = url
    console.print(f"hub serving on {url} (log: {demo.workdir / 'hub.log'}), {len(demo.sites)} sites registered")


def publish_summaries(demo: Demo) -> None:
    """Step 3b: each site publishes its suppressed cohort summary through its outbound ledger."""
    table = Table("site", "bytes", "sha256", "status")
    for name in demo.sites:
        receipt = demo.cli("site-node", "publish", "--home", _home(demo, name), "--hub", demo.state["hub_url"],
                           "--token", demo.state["site_tokens"][name], "--json", json_out=True)
        table.add_row(name, str(receipt["size_bytes"]), receipt["sha256"][:16] + "…", receipt["status"])
    console.print(table)


def _count(cell: dict[str, Any]) -> str:
    return str(cell.get("display", ""))


def search_catalog(demo: Demo) -> None:
    """Step 4: a searcher asks for CT collections, then narrows to a diagnosis; prints the tables."""
    headers = {"Authorization": f"Bearer {demo.state['searcher_token']}"}
    answer = httpx.get(f"{demo.state['hub_url']}/catalog/search", params={"modality": "CT"},
                       headers=headers, timeout=30).json()
    table = Table("site", "collection", "persons", "studies", "series", "instances",
                  title=f"Catalog search: modality=CT ({answer['total_collections']} collections)")
    for row in answer["results"]:
        table.add_row(row["site"], row["description"] or row["key"], *(_count(row[k]) for k in
                                                                       ("persons", "studies", "series", "instances")))
    console.print(table)
    totals = Table("site", "collections", "persons", "series", title="Totals per site (suppressed cells never summed)")
    for site in answer["sites"]:
        totals.add_row(site["site"], str(site["collections"]), _count(site["persons"]), _count(site["series"]))
    console.print(totals)
    facets = answer.get("facets", {})
    for facet in ("condition", "sex", "age_band"):
        values = ", ".join(f"{v['value']} ({_count(v['persons'])})" for v in facets.get(facet, []))
        console.print(f"[bold]{facet}[/bold]: {values or '—'}")
    console.print(f"web page: {demo.state['hub_url']}/ (searchers need a token: see README)")


def plan(demo: Demo) -> list[tuple[str, Callable[[], None]]]:
    """The ordered steps of this build of the demo."""
    return [
        ("Generate synthetic hospitals", lambda: generate_hospitals(demo)),
        ("Site nodes: de-identify, FHIR/CSV to OMOP, imaging tables, curate", lambda: site_pipeline(demo)),
        ("Hub on loopback: sites registered, tokens issued", lambda: start_hub(demo)),
        ("Sites publish suppressed cohort summaries", lambda: publish_summaries(demo)),
        ("Catalog search as a searcher", lambda: search_catalog(demo)),
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
