"""The demo's steps, in order. Each one calls a public command or API and prints what it did."""

from __future__ import annotations

import base64
import html
import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.table import Table

from infra.demo.clinical import clinical_inference
from infra.demo.pacs import dicom_into_site
from infra.demo.runner import Demo, DemoError, console

STYLES = "abc"


def _style(index: int) -> str:
    return STYLES[index % len(STYLES)]


def generate_hospitals(demo: Demo) -> None:
    """Step 1: one synthetic hospital export per site (styles a, b, c cycle)."""
    table = Table("site", "style", "patients", "studies", "series", "instances", "FHIR resources")
    for i, name in enumerate(demo.sites):
        out = demo.workdir / "exports" / name
        summary = demo.cli(
            "site-node",
            "synth",
            str(out),
            "--patients",
            str(demo.patients),
            "--seed",
            str(demo.seed + i),
            "--site-style",
            _style(i),
            "--json",
            json_out=True,
        )
        demo.state.setdefault("synth", {})[name] = summary
        fhir_total = sum((summary.get("fhir") or {}).values())
        table.add_row(
            name,
            _style(i),
            *(str(summary.get(k, "")) for k in ("patients", "studies", "series", "instances")),
            str(fhir_total),
        )
    console.print(table)


def _home(demo: Demo, name: str) -> str:
    return str(demo.workdir / "sites" / name)


def site_pipeline(demo: Demo) -> None:
    """Step 2: per site: init, de-identify DICOM, FHIR + CSV into OMOP, imaging tables, QC report, curate."""
    table = Table(
        "site",
        "DICOM written",
        "quarantined",
        "files/s",
        "OMOP persons",
        "OMOP rows",
        "unmapped codes",
        "image series",
        "curated train/val",
    )
    for name in demo.sites:
        export = demo.workdir / "exports" / name
        home = _home(demo, name)
        truth_system = demo.state["synth"][name].get("mrn_system")
        demo.cli(
            "site-node",
            "init",
            "--home",
            home,
            "--site-id",
            name,
            "--country",
            "XX",
            *(["--mrn-system", truth_system] if truth_system else []),
        )
        deid = dicom_into_site(demo, name, export / "dicom", home)
        fhir = demo.cli("site-node", "fhir", str(export / "fhir"), "--home", home, "--json", json_out=True)
        demo.cli(
            "site-node",
            "csv",
            str(export / "crf" / "case_report_form.csv"),
            "--dictionary",
            str(export / "crf" / "dictionary.toml"),
            "--home",
            home,
            "--json",
            json_out=True,
        )
        images = demo.cli("site-node", "omop", "sync-images", "--home", home, "--json", json_out=True)
        curate = demo.cli("site-node", "curate", "--home", home, "--json", json_out=True)
        demo.state.setdefault("sites", {})[name] = {"deid": deid, "fhir": fhir, "curate": curate}
        quarantined = ", ".join(f"{k} {v}" for k, v in deid.get("quarantined", {}).items()) or "0"
        counts = curate.get("counts", {})
        table.add_row(
            name,
            str(deid["written"]),
            quarantined,
            f"{deid.get('files_per_s', 0):.0f}",
            str(fhir.get("persons")),
            str(sum(fhir.get("rows", {}).values())),
            str(fhir.get("unmapped", {}).get("total", 0)),
            str(images.get("rows", {}).get("image_occurrence", 0)),
            f"{counts.get('training', 0)}/{counts.get('validation', 0)}",
        )
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
    env = {
        "HUB_HOME": str(hub_home),
        "HUB_SIMULATOR_SITES": json.dumps({n: _home(demo, n) for n in demo.sites}),
    }
    demo.state["hub_env"] = env
    demo.cli("central-hub", "init", env=env)
    for name in demo.sites:
        created = demo.cli(
            "central-hub", "site", "add", name, "--country", "XX", "--json", env=env, json_out=True
        )
        demo.state.setdefault("site_tokens", {})[name] = created["token"]
    for role, holder in (("searcher", "sam-searcher"), ("researcher", "alice-researcher")):
        created = demo.cli(
            "central-hub",
            "token",
            "create",
            "--role",
            role,
            "--name",
            holder,
            "--json",
            env=env,
            json_out=True,
        )
        demo.state[f"{role}_token"] = created["token"]
    demo.start("central-hub", "serve", "--port", str(port), log_name="hub", env=env)
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/healthz")
    demo.state["hub_url"] = url
    console.print(
        f"hub serving on {url} (log: {demo.workdir / 'hub.log'}), {len(demo.sites)} sites registered"
    )


def publish_summaries(demo: Demo) -> None:
    """Step 3b: each site publishes its suppressed cohort summary through its outbound ledger."""
    table = Table("site", "bytes", "sha256", "status")
    for name in demo.sites:
        receipt = demo.cli(
            "site-node",
            "publish",
            "--home",
            _home(demo, name),
            "--hub",
            demo.state["hub_url"],
            "--token",
            demo.state["site_tokens"][name],
            "--json",
            json_out=True,
        )
        table.add_row(name, str(receipt["size_bytes"]), receipt["sha256"][:16] + "…", receipt["status"])
    console.print(table)


def _count(cell: dict[str, Any]) -> str:
    return str(cell.get("display", ""))


def search_catalog(demo: Demo) -> None:
    """Step 4: a searcher asks for CT collections, then narrows to a diagnosis; prints the tables."""
    headers = {"Authorization": f"Bearer {demo.state['searcher_token']}"}
    answer = httpx.get(
        f"{demo.state['hub_url']}/catalog/search", params={"modality": "CT"}, headers=headers, timeout=30
    ).json()
    table = Table(
        "site",
        "collection",
        "persons",
        "studies",
        "series",
        "instances",
        title=f"Catalog search: modality=CT ({answer['total_collections']} collections)",
    )
    for row in answer["results"]:
        table.add_row(
            row["site"],
            row["description"] or row["key"],
            *(_count(row[k]) for k in ("persons", "studies", "series", "instances")),
        )
    console.print(table)
    totals = Table(
        "site", "collections", "persons", "series", title="Totals per site (suppressed cells never summed)"
    )
    for site in answer["sites"]:
        totals.add_row(
            site["site"], str(site["collections"]), _count(site["persons"]), _count(site["series"])
        )
    console.print(totals)
    facets = answer.get("facets", {})
    for facet in ("condition", "sex", "age_band"):
        values = ", ".join(f"{v['value']} ({_count(v['persons'])})" for v in facets.get(facet, []))
        console.print(f"[bold]{facet}[/bold]: {values or '—'}")
    console.print(
        f"web page: {demo.state['hub_url']}/ — log in with the demo searcher token "
        f"{demo.state['searcher_token']} (live while the demo runs)"
    )


def _project_access(demo: Demo, headers: dict[str, str]) -> None:
    """Project 'demo' with the researcher; a seg3d access request that every site approves at the site."""
    import datetime as dt

    env, hub = demo.state["hub_env"], demo.state["hub_url"]
    sites = ",".join(demo.sites)
    demo.cli("central-hub", "project", "create", "demo", "--sites", sites, "--json", env=env, json_out=True)
    demo.cli(
        "central-hub", "project", "add-member", "demo", "--token-name", "alice-researcher", "--json",
        env=env, json_out=True,
    )  # fmt: skip
    body = {
        "project": "demo",
        "sites": demo.sites,
        "templates": ["seg3d"],
        "justification": "Demo: federated lesion segmentation on synthetic data.",
        "end_date": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
    }
    response = httpx.post(f"{hub}/access-requests", json=body, headers=headers, timeout=30)
    if response.status_code != 201:
        raise DemoError(f"access request refused: HTTP {response.status_code} {response.text[:300]}")
    request_id = str(response.json()["id"])
    for name in demo.sites:
        token = demo.state["site_tokens"][name]
        demo.cli(
            "site-node", "requests", "approve", request_id, "--home", _home(demo, name),
            "--hub", hub, "--token", token, "--json", json_out=True,
        )  # fmt: skip
    console.print(f"access request {request_id} (project demo, seg3d) approved at {sites}")


def federated_training(demo: Demo) -> None:
    """Step 5: sites approve seg3d and the project's access request; a researcher submits through the hub."""
    for name in demo.sites:
        demo.cli("site-node", "job", "approve", "seg3d", "--home", _home(demo, name), "--json", json_out=True)
    headers = {"Authorization": f"Bearer {demo.state['researcher_token']}"}
    _project_access(demo, headers)
    body = {"template": "seg3d", "project": "demo", "sites": demo.sites, "params": {"rounds": demo.rounds}}
    response = httpx.post(f"{demo.state['hub_url']}/jobs", json=body, headers=headers, timeout=60)
    if response.status_code != 201:
        raise DemoError(f"job submission refused: HTTP {response.status_code} {response.text[:300]}")
    job = response.json()
    job_id = job["id"]
    console.print(f"submitted seg3d as job {job_id} to {', '.join(demo.sites)} ({demo.rounds} rounds)")
    seen_round = -1
    deadline = time.time() + 900
    while time.time() < deadline:
        job = httpx.get(f"{demo.state['hub_url']}/jobs/{job_id}", headers=headers, timeout=30).json()
        if job.get("round") is not None and job["round"] != seen_round:
            seen_round = job["round"]
            console.print(f"  state {job['state']}, round {seen_round}")
        if job["state"] in ("finished", "failed", "refused", "aborted"):
            break
        time.sleep(3)
    demo.state["job"] = job
    if job["state"] != "finished":
        raise DemoError(
            f"job {job_id} ended in state {job['state']}: {job.get('error') or job.get('refusals')}"
        )


def _dice_rows(metrics: dict[str, Any]) -> list[tuple[str, int, float]]:
    rows = []
    for site, per_round in (metrics.get("rounds") or {}).items():
        for entry in per_round:
            dice = entry.get("val_dice", entry.get("dice"))
            if dice is not None:
                rows.append((site, int(entry.get("round", 0)), float(dice)))
    return rows


def training_results(demo: Demo) -> None:
    """Step 6: per-round Dice per site; global model, metrics JSON, plot and an HTML report on disk."""
    job_id = demo.state["job"]["id"]
    headers = {"Authorization": f"Bearer {demo.state['researcher_token']}"}
    base = f"{demo.state['hub_url']}/jobs/{job_id}"
    out = demo.workdir / "results"
    out.mkdir(parents=True, exist_ok=True)
    report = httpx.get(f"{base}/report", headers=headers, timeout=60).json()
    model = httpx.get(f"{base}/model", headers=headers, timeout=120)
    if model.status_code != 200:
        raise DemoError(f"global model download failed: HTTP {model.status_code}")
    (out / "global_model.pt").write_bytes(model.content)
    (out / "metrics.json").write_text(json.dumps(report["metrics"], indent=2))
    (out / "dice_per_round.png").write_bytes(base64.b64decode(report["plot_png_base64"]))
    rows = _dice_rows(report["metrics"])
    if not rows:
        raise DemoError("the job finished without per-site Dice metrics")
    all_rounds = sorted({r for _, r, _ in rows})
    table = Table("site", *(f"round {r}" for r in all_rounds), title="Validation Dice (rounds from 0)")
    for site in sorted({s for s, _, _ in rows}):
        by_round = {r: d for s, r, d in rows if s == site}
        table.add_row(site, *(f"{by_round[r]:.3f}" if r in by_round else "" for r in all_rounds))
    console.print(table)
    demo.state["results"] = out
    _write_html_report(demo, out, report, rows)
    for name in ("global_model.pt", "metrics.json", "dice_per_round.png", "report.html"):
        console.print(f"  {out / name}")


def _write_html_report(
    demo: Demo, out: Any, report: dict[str, Any], rows: list[tuple[str, int, float]]
) -> None:
    cells = "".join(f"<tr><td>{html.escape(s)}</td><td>{r}</td><td>{d:.3f}</td></tr>" for s, r, d in rows)
    job = report["job"]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo report</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}
td,th{{padding:.2rem .8rem}}</style></head>
<body><h1>Federated demo report</h1>
<p>Job <code>{html.escape(str(job["id"]))}</code>: template {html.escape(job["template"])}, sites
{html.escape(", ".join(demo.sites))}, {demo.rounds} rounds, state {html.escape(job["state"])}.</p>
<p><a href="global_model.pt">Global model (PyTorch checkpoint)</a> · <a href="metrics.json">Metrics JSON</a>
· <a href="privacy.json">Privacy summary</a></p>
<img src="dice_per_round.png" alt="Dice per round per site" style="max-width:100%">
<table><tr><th>site</th><th>round</th><th>validation Dice</th></tr>{cells}</table>
<p>Catalog: <a href="{html.escape(demo.state["hub_url"])}/">{html.escape(demo.state["hub_url"])}/</a>
(live while the demo runs).</p></body></html>"""
    (out / "report.html").write_text(page)


def _phi_values(truth_path: Any) -> list[str]:
    truth = json.loads(truth_path.read_text())
    return sorted(
        {str(item["value"]) for item in truth.get("phi", []) if len(str(item["value"]).strip()) >= 4}
    )


def _find_phi(payload: bytes, values: list[str]) -> list[str]:
    """Planted values found in ``payload`` as whole tokens, case-insensitively."""
    hits = []
    lowered = payload.lower()
    for value in values:
        needle = value.encode("utf-8").lower()
        if needle not in lowered:  # fast substring test first; the boundary regex only on candidates
            continue
        pattern = rb"(?<![a-z0-9])" + re.escape(needle) + rb"(?![a-z0-9])"
        if re.search(pattern, lowered):
            hits.append(value)
    return hits


def privacy_summary(demo: Demo) -> None:
    """Step 7: what left each site (from its ledger) and a scan of those exact bytes for every PHI value."""
    all_values = []
    for name in demo.sites:
        all_values += _phi_values(demo.workdir / "exports" / name / "truth.json")
    values = sorted(set(all_values))
    table = Table("site", "payloads", "bytes", "kinds", "archived", "PHI values found")
    summary: dict[str, Any] = {"phi_values_scanned": len(values), "sites": {}}
    total_hits = 0
    for name in demo.sites:
        folder = demo.workdir / "ledgers" / name
        rows = demo.cli(
            "site-node",
            "ledger",
            "--home",
            _home(demo, name),
            "--export",
            str(folder),
            "--json",
            json_out=True,
        )
        files = sorted(folder.glob("*.bin")) if folder.exists() else []
        hits = sorted({h for f in files for h in _find_phi(f.read_bytes(), values)})
        total_hits += len(hits)
        kinds: dict[str, int] = {}
        for row in rows:
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
        size = sum(int(r["size_bytes"]) for r in rows)
        summary["sites"][name] = {
            "payloads": len(rows),
            "bytes": size,
            "kinds": kinds,
            "archived": len(files),
            "phi_hits": len(hits),
            "sha256": [r["sha256"] for r in rows],
        }
        table.add_row(
            name,
            str(len(rows)),
            str(size),
            ", ".join(f"{k} {v}" for k, v in kinds.items()),
            str(len(files)),
            str(len(hits)),
        )
    console.print(table)
    console.print(
        f"scanned every archived payload for {len(values)} planted PHI values "
        f"(names, MRNs, dates, addresses, UIDs...): {total_hits} found"
    )
    out = demo.state.get("results", demo.workdir)
    (out / "privacy.json").write_text(json.dumps(summary, indent=2))
    if total_hits:
        raise DemoError(f"{total_hits} PHI values found in outbound payloads")


def plan(demo: Demo) -> list[tuple[str, Callable[[], None]]]:
    """The ordered steps of this build of the demo."""
    return [
        ("Generate synthetic hospitals", lambda: generate_hospitals(demo)),
        ("Site nodes: de-identify, FHIR/CSV to OMOP, imaging tables, curate", lambda: site_pipeline(demo)),
        ("Hub on loopback: sites registered, tokens issued", lambda: start_hub(demo)),
        ("Sites publish suppressed cohort summaries", lambda: publish_summaries(demo)),
        ("Catalog search as a searcher", lambda: search_catalog(demo)),
        (
            "Researcher submits seg3d through the hub; NVFlare simulator trains",
            lambda: federated_training(demo),
        ),
        (
            "Results: Dice per round per site, model, metrics, plot, HTML report",
            lambda: training_results(demo),
        ),
        ("Privacy summary: outbound ledgers scanned for planted PHI", lambda: privacy_summary(demo)),
        (
            "Back to the hospital: pull the global model, infer a new study, store SEG + SR",
            lambda: clinical_inference(demo),
        ),
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
