"""Model and clinical inference commands: ``model pull|add|list``, ``infer``, ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from common.errors import ConfigError, InputError
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site

model_app = typer.Typer(help="Models held by this site: pull from the hub, add, list.", no_args_is_help=True)
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cpu or cuda (default: CUDA when present).")
]


@model_app.command("pull")
def pull(
    model: Annotated[str, typer.Argument(help="NAME or NAME:VERSION (default: the newest).")],
    hub: Annotated[str | None, typer.Option("--hub", help="Hub URL (default: hub_url in site.toml).")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SITE_NODE_HUB_TOKEN", help="Hub token (default: hub_token in site.toml)."
        ),
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Download a model version from the hub's registry and verify its SHA-256 against the card."""
    from site_node.models.pull import pull_model

    ctx = open_site(home)
    url = hub or ctx.settings.hub_url
    clear = token or (ctx.settings.hub_token.get_secret_value() if ctx.settings.hub_token else None)
    if not url or not clear:
        raise ConfigError(
            "pulling needs the hub URL and a site token (--hub/--token or site.toml)", field="hub_url"
        )
    stored = pull_model(ctx, model, url, clear)
    if json_out:
        emit_json(stored.public())
    else:
        typer.echo(f"pulled {stored.ref} (sha256 {stored.sha256} verified)")


@model_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Model name (lower-case).")],
    file: Annotated[Path, typer.Argument(help="Weights file (PyTorch state dict).")],
    template: Annotated[
        str, typer.Option("--template", help="Template whose network the weights fit.")
    ] = "seg3d",
    channels: Annotated[
        str | None, typer.Option("--channels", help="Network channels, e.g. 8,16,32.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add a model from elsewhere as the next version of NAME (checked to load into the network)."""
    from site_node.inference.network import load_weights_file
    from site_node.models.store import next_version, register

    ctx = open_site(home)
    if not file.is_file():
        raise InputError("the weights file does not exist", field="file")
    args: dict[str, Any] = {}
    if channels:
        args["channels"] = [int(v) for v in channels.split(",")]
    load_weights_file(file, args.get("channels"))
    stored = register(
        ctx.engine,
        ctx.settings.home,
        name=name,
        version=next_version(ctx.engine, name),
        source="file",
        weights=file,
        template=template,
        card={"model_args": args},
    )
    if json_out:
        emit_json(stored.public())
    else:
        typer.echo(f"added {stored.ref} (sha256 {stored.sha256})")


@model_app.command("list")
def list_(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Models held here: name, version, source, digest, template, metrics."""
    from site_node.models.store import list_models

    ctx = open_site(home)
    rows = [m.public() for m in list_models(ctx.engine, ctx.settings.home)]
    if json_out:
        emit_json({"models": rows})
        return
    if not rows:
        typer.echo("no models (site-node model pull NAME, model add, or train-local --save NAME)")
    for r in rows:
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(r["metrics"].items()) if isinstance(v, float))
        typer.echo(
            f"{r['name']}:{r['version']:<4} {r['source']:<6} {r['template']:<8} "
            f"sha256 {r['sha256'][:16]}...  {metrics}"
        )


def infer(
    model: Annotated[str, typer.Argument(help="NAME or NAME:VERSION held by this site.")],
    input_dir: Annotated[Path | None, typer.Option("--input", help="Folder holding one study.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the SEG, SR (and overlay).")] = None,
    pacs: Annotated[str | None, typer.Option("--pacs", help="PACS node (site-node pacs add) to use.")] = None,
    accession: Annotated[
        str | None, typer.Option("--accession", help="Accession number (with --pacs).")
    ] = None,
    via: Annotated[
        str, typer.Option("--via", help="dimse (C-GET/C-MOVE + C-STORE) or dicomweb (WADO-RS + STOW-RS).")
    ] = "dimse",
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Also write a Secondary Capture overlay.")
    ] = False,
    device: DeviceOption = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run a model on an identified study inside the hospital; write DICOM-SEG and TID 1500 SR.

    From a folder (--input/--out) or from the PACS (--pacs/--accession: the results are stored back
    into the study). Nothing of it leaves the site.
    """
    ctx = open_site(home)
    if via not in ("dimse", "dicomweb"):
        raise InputError("--via is dimse or dicomweb", field="via")
    if pacs is not None:
        from site_node.inference.pacs_io import infer_pacs

        if accession is None or input_dir is not None:
            raise InputError("with --pacs give --accession (and no --input)", field="accession")
        result = infer_pacs(ctx, model, pacs, accession, via=via, overlay=overlay, device=device)
        written: list[Path] = []
    else:
        from site_node.inference.runner import infer_folder

        if input_dir is None or out is None:
            raise InputError("give --input DIR and --out DIR, or --pacs NODE --accession A", field="input")
        result, written = infer_folder(ctx, model, input_dir, out, overlay=overlay, device=device)
    payload = {**result.public(), "files": [str(p) for p in written]}
    if json_out:
        emit_json(payload)
        return
    typer.echo(f"{result.model} on study {result.study}: {len(result.lesions)} lesion(s)")
    for lesion in result.lesions:
        typer.echo(f"  segment {lesion['segment']}: {lesion['volume_ml']:.2f} mL")
    typer.echo(
        f"latency {result.latency_s:.2f} s (model compute {result.compute_s:.2f} s on {result.device})"
    )
    for path in written:
        typer.echo(f"wrote {path}")
    if pacs is not None:
        typer.echo(f"stored {', '.join(result.outputs)} into the study on {pacs}")


def evaluate(
    model: Annotated[str, typer.Argument(help="NAME or NAME:VERSION held by this site.")],
    device: DeviceOption = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Score a model on this site's labelled curated set (aggregate lesion Dice; nothing leaves)."""
    from site_node.curation import curated_dir
    from site_node.inference.evaluate import score
    from site_node.inference.network import load_network, patch_of
    from site_node.models.store import resolve_verified
    from site_node.training.device import select_device

    ctx = open_site(home)
    stored = resolve_verified(ctx.engine, ctx.settings.home, model)
    dev = select_device(device)
    result = score(load_network(stored, dev), curated_dir(ctx), patch=patch_of(stored), device=dev)
    result = {**result, "model": stored.ref, "releasable": result["n_cases"] >= ctx.settings.floor_k}
    if json_out:
        emit_json(result)
        return
    typer.echo(
        f"{stored.ref} on {result['n_cases']} labelled series: lesion Dice {result['dice']:.3f} "
        f"(SD {result['dice_sd']:.3f})"
    )
    if not result["releasable"]:
        typer.echo(
            f"below the site's floor ({ctx.settings.floor_k}): a federated evaluation would be refused"
        )


def register(app: typer.Typer) -> None:
    """Add the model and inference commands to ``site-node``."""
    app.add_typer(model_app, name="model")
    app.command("infer")(infer)
    app.command("evaluate")(evaluate)
