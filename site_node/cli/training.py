"""Curation and training commands: ``curate``, ``job approve|list|policy``, ``train-local``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from common.errors import InputError
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site

job_app = typer.Typer(help="Federated job templates this site accepts.", no_args_is_help=True)


def _jobs_root() -> Path:
    spec = importlib.util.find_spec("jobs")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the job templates (jobs/) are not installed", field="template")
    return Path(next(iter(spec.submodule_search_locations)))


def curate(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Build the training set from the de-identified export: NIfTI volumes, labels, datalist, QC report."""
    from site_node.curation import check_readiness, curate_site, curated_dir

    ctx = open_site(home)
    if json_out:
        report = curate_site(ctx)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("curating"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("curate", total=None)
            report = curate_site(
                ctx, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    readiness = check_readiness(curated_dir(ctx))
    if json_out:
        emit_json(
            {
                "counts": report.counts,
                "readiness": readiness.to_dict(),
                "excluded": [
                    {"series": s.series_uid, "patient": s.patient, "reasons": s.reasons}
                    for s in report.series
                    if not s.included
                ],
                "seg_findings": report.seg_findings,
                "out": str(report.out_dir),
            }
        )
        return
    c = report.counts
    typer.echo(
        f"curated {c['included']} of {c['series']} series ({c['training']} training, "
        f"{c['validation']} validation, {c['patients']} patients) into {report.out_dir}"
    )
    for s in report.series:
        if not s.included:
            typer.echo(f"  excluded series {s.series_uid[:24]}... ({s.patient}): {', '.join(s.reasons)}")
    for f in report.seg_findings:
        typer.echo(f"  SEG problem ({f['patient']}): {f['code']}")
    typer.echo(
        "ready for training"
        if readiness.ready
        else "NOT ready for training: " + "; ".join(readiness.problems)
    )


@job_app.command("approve")
def approve(
    template: Annotated[str, typer.Argument(help="Job template name (folder under jobs/).")],
    folder: Annotated[Path | None, typer.Option("--folder", help="Approve this job folder instead.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Accept a job template: record the SHA-256 of its folder in site.toml (approved_jobs).

    Shows the limits this site puts on the template's parameters ([job_policy.<template>] in site.toml),
    which its NVFlare client enforces on every run whatever the hub accepted.
    """
    from site_node.training.approval import approve_template

    ctx = open_site(home)
    digest = approve_template(ctx.settings.home, template, folder or _jobs_root() / template)
    limits = getattr(ctx.settings.job_policy, template, None)
    policy = limits.model_dump() if limits is not None else {}
    if json_out:
        emit_json({"template": template, "digest": digest, "policy": policy})
    else:
        typer.echo(f"approved {template} (sha256 {digest})")
        if policy:
            typer.echo("  site policy: " + ", ".join(f"{k}={v}" for k, v in policy.items()))


@job_app.command("list")
def list_(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Approved templates, and whether the installed template still matches the approved digest."""
    from site_node.training.approval import template_digest

    ctx = open_site(home)
    rows = []
    for name, digest in sorted(ctx.settings.approved_jobs.items()):
        folder = _jobs_root() / name
        current = template_digest(folder) if folder.is_dir() else None
        rows.append({"template": name, "digest": digest, "installed_matches": current == digest})
    if json_out:
        emit_json({"approved_jobs": rows})
        return
    if not rows:
        typer.echo("no job templates approved (site-node job approve TEMPLATE)")
    for row in rows:
        state = (
            "matches installed template" if row["installed_matches"] else "differs from installed template"
        )
        typer.echo(f"{row['template']:<16} {row['digest'][:16]}...  {state}")


@job_app.command("policy")
def policy(
    local_dir: Annotated[Path, typer.Argument(help="The NVFlare startup kit's local/ folder.")],
    home: HomeOption = None,
) -> None:
    """Write NVFlare authorization.json and privacy.json generated from the site's settings."""
    from site_node.training.policy import write_site_policy

    for path in write_site_policy(open_site(home).settings, local_dir):
        typer.echo(f"wrote {path}")


def train_local(
    home: HomeOption = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 10,
    lr: Annotated[float, typer.Option("--lr")] = 3e-3,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda (default: auto).")] = None,
    save: Annotated[
        str | None, typer.Option("--save", help="Keep the model as the next version of NAME (model list).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Train the default model on this site's curated set alone (nothing leaves the site)."""
    from site_node.curation import curated_dir, require_ready
    from site_node.training.local import train_site

    ctx = open_site(home)
    if save is not None:
        from site_node.models.store import parse_ref

        parse_ref(save)  # refuse a bad name before training, not after
    require_ready(curated_dir(ctx), ctx.settings.site_id)
    result = train_site(curated_dir(ctx), epochs=epochs, lr=lr, device=device)
    model = result.pop("model")
    if save is not None:
        from site_node.training.local import save_local_model

        result["saved"] = save_local_model(ctx, save, model, result).ref
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"trained {epochs} epochs on {result['device']}: validation Dice {result['val_dice']:.3f}")
        if save is not None:
            typer.echo(f"saved as {result['saved']}")


def register(app: typer.Typer) -> None:
    """Add the curation and training commands to ``site-node``."""
    app.command("curate")(curate)
    app.command("train-local")(train_local)
    app.add_typer(job_app, name="job")
