"""``site-node synth``: write a synthetic hospital export (DICOM, FHIR, CSV, truth.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from site_node.cli.options import JsonOption, emit_json


def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (must be empty unless --force).")],
    patients: Annotated[int, typer.Option("--patients", help="Number of patients.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed -> identical files).")] = 0,
    site_style: Annotated[str, typer.Option("--site-style", help="Site style: a, b or c.")] = "a",
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty folder.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Generate one synthetic hospital's export with planted PHI and ground truth."""
    from site_node.synthetic import generate_site

    summary = generate_site(out, patients=patients, seed=seed, style=site_style, overwrite=force)
    if json_out:
        emit_json(summary.to_dict())
        return
    typer.echo(
        f"wrote site style {summary.style}: {summary.patients} patients, {summary.studies} studies, "
        f"{summary.instances} DICOM instances, {summary.segmentations} SEG, "
        f"{sum(summary.fhir.values())} FHIR resources to {summary.out}"
    )


def register(app: typer.Typer) -> None:
    """Attach the ``synth`` command to ``app``."""
    app.command("synth")(synth)
