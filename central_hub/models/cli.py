"""``central-hub model list|show``: the registry from the operator's terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

model_app = typer.Typer(help="The model registry: published model versions.", no_args_is_help=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar="HUB_HOME", help="Hub home (or $HUB_HOME).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _session(home: Path | None) -> Any:
    from central_hub.db import session_factory
    from central_hub.home import open_hub

    return session_factory(open_hub(home).database_url)()


def _dice(metrics: dict[str, Any]) -> str:
    value = metrics.get("val_dice")
    return "n/a" if value is None else f"{value:.3f}"


@model_app.command("list")
def list_(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Every model version: name, version, template, sites, rounds, SHA-256."""
    from central_hub.models import service

    with _session(home) as session:
        cards = [m.card() for m in service.list_models(session)]
    if json_out:
        typer.echo(json.dumps({"models": cards}, default=str, sort_keys=True))
        return
    if not cards:
        typer.echo("no models published yet (a finished training job publishes one)")
    for c in cards:
        typer.echo(
            f"{c['name']}:{c['version']}  {c['template']}  rounds={c['rounds']}  "
            f"sites={','.join(c['training_sites'])}  sha256={c['sha256'][:16]}..."
        )


@model_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="NAME or NAME:VERSION (default: latest).")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """One model card, with each site's metrics, dataset version and evaluations."""
    from central_hub.models import service

    name, version = service.parse_ref(model)
    with _session(home) as session:
        card = service.full_card(session, service.get_model(session, name, version))
    if json_out:
        typer.echo(json.dumps(card, default=str, sort_keys=True))
        return
    typer.echo(
        f"{card['name']}:{card['version']}  template {card['template']} ({card['template_digest'][:16]}...)"
    )
    typer.echo(f"  job {card['job_id']}, {card['rounds']} rounds, sha256 {card['sha256']}")
    for site in card["training_sites"]:
        metrics = card["site_metrics"].get(site, {})
        dataset = card["dataset_versions"].get(site, "unknown")
        typer.echo(f"  {site:<16} val_dice={_dice(metrics)}  dataset {dataset[:23]}")
    for row in card["evaluations"]:
        outcome = row["refused"] or ", ".join(f"{k}={v}" for k, v in sorted(row["metrics"].items()))
        typer.echo(f"  evaluated at {row['site']:<16} {outcome}")
