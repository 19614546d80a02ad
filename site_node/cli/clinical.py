"""Clinical-data commands: ``fhir``, ``csv``, ``omop report|load-vocabulary|sync-images``, ``withdraw``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from site_node.audit import audited_run
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site

omop_app = typer.Typer(
    help="The site's OMOP CDM database: report, vocabulary, imaging tables.", no_args_is_help=True
)


def _print_counts(title: str, payload: dict[str, Any]) -> None:
    """A summary for people: one line a field; a nested count table on its own indented line."""
    typer.echo(title)
    for key, value in payload.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, dict))
            typer.echo(f"  {key}: {inner or '-'}")
            for name, table in value.items():
                if isinstance(table, dict) and table:
                    shown = ", ".join(f"{k}={v}" for k, v in table.items())
                    typer.echo(f"    {name.replace('_', ' ')}: {shown}")
        else:
            typer.echo(f"  {key}: {value}")


def fhir(
    sources: Annotated[list[Path], typer.Argument(help="FHIR R4 ndjson / Bundle files or folders.")],
    home: HomeOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default: all cores).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Ingest FHIR R4 (bulk-export ndjson or Bundles) into the OMOP tables, pseudonymized."""
    from site_node.clinical.fhir.ingest import ingest_fhir

    site = open_site(home)
    summary = ingest_fhir(site, sources, workers=workers).to_dict()  # one audited, journaled run
    if json_out:
        emit_json(summary)
    else:
        _print_counts("FHIR ingest", summary)
        _mrn_hint(summary)
        _fallback_note(summary)


def _fallback_note(summary: dict[str, Any]) -> None:
    """Say when Patients were keyed by a fallback identifier (the site has no mrn_system)."""
    keyed = summary["patients_keyed_by"]
    fallback = keyed.get("identifier", 0) + keyed.get("resource_id", 0)
    if fallback:
        typer.echo(
            f"{fallback} Patient(s) were keyed by their first record number or FHIR id, not a "
            "recognised MRN. Their DICOM images join only if the DICOM PatientID is that same value; "
            "set mrn_system in site.toml to name the MRN system."
        )


def _mrn_hint(summary: dict[str, Any]) -> None:
    """Tell the site admin how to fix Patients quarantined for want of an MRN (systems only)."""
    count = summary["quarantined"]["by_reason"].get("no_mrn", 0)
    if not count:
        return
    systems = summary["quarantined"]["no_mrn_identifier_systems"]
    typer.echo(
        f"{count} Patient(s) have no identifier recognised as the MRN; they and their records were "
        "set aside. Set mrn_system in site.toml to the system of your MRN identifiers and run again "
        "(files with such Patients are read again; nothing is duplicated)."
    )
    if systems:
        typer.echo(
            "  identifier systems on those Patients: " + ", ".join(f"{k} ({v})" for k, v in systems.items())
        )


def csv_command(
    file: Annotated[Path, typer.Argument(help="Case-report-form CSV file.")],
    dictionary: Annotated[Path, typer.Option("--dictionary", help="Column dictionary (TOML).")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Ingest a case-report-form CSV through its column dictionary."""
    from site_node.clinical.csv_ingest import ingest_csv

    site = open_site(home)
    summary = ingest_csv(site, file, dictionary).to_dict()  # one audited, journaled run
    if json_out:
        emit_json(summary)
    else:
        _print_counts("CSV ingest", summary)


@omop_app.command("report")
def report(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Data-quality report of the OMOP database (checks from the official field-level spec)."""
    from site_node.clinical.omop.report import build_report

    site = open_site(home)
    result = build_report(site.engine)
    if json_out:
        emit_json(result)
        return
    typer.echo(
        f"{'table':24} {'rows':>9} {'required':>9} {'fk':>6} {'domain':>7} {'dates':>6} {'unmapped%':>9}"
    )
    for name, entry in result["tables"].items():
        unmapped = entry.get("unmapped", {}).get("percent_unmapped", "")
        typer.echo(
            f"{name:24} {entry['rows']:>9} {sum(entry.get('required_violations', {}).values()):>9} "
            f"{sum(entry.get('fk_violations', {}).values()):>6} "
            f"{sum(entry.get('domain_violations', {}).values()):>7} "
            f"{sum(entry.get('date_anomalies', {}).values()):>6} {unmapped!s:>9}"
        )
    for vocab, tally in result["unmapped_by_vocabulary"].items():
        typer.echo(f"unmapped {vocab}: {tally['percent_unmapped']}% of {tally['mapped'] + tally['unmapped']}")
    typer.echo(f"persons without observation period: {result['persons_without_observation_period']}")


@omop_app.command("load-vocabulary")
def load_vocabulary(
    folder: Annotated[Path, typer.Argument(help="Athena download folder (CONCEPT.csv, ...; tab-separated).")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load a site's own OHDSI Athena vocabulary export (then more source codes map)."""
    from site_node.clinical.vocabulary import load_athena

    site = open_site(home)
    with audited_run(site.engine, "load-vocabulary", {}) as run:
        counts = load_athena(site.engine, folder)
        run.counts = counts
    if json_out:
        emit_json(counts)
    else:
        _print_counts("vocabulary loaded", counts)


@omop_app.command("sync-images")
def sync_images_command(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Fill IMAGE_OCCURRENCE / IMAGE_FEATURE from the de-identified DICOM export."""
    from site_node.clinical.omop.imaging import sync_images

    site = open_site(home)
    with audited_run(site.engine, "sync-images", {}) as run:
        summary = sync_images(site).to_dict()
        run.counts = summary
    if json_out:
        emit_json(summary)
    else:
        _print_counts("imaging tables", summary)


def withdraw(
    patient_id: Annotated[str, typer.Argument(help="The patient's MRN or pseudonym.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Withdraw a patient: remove OMOP rows and images, record the withdrawal."""
    from site_node.audit import _operator
    from site_node.withdraw import withdraw_patient

    site = open_site(home)
    with audited_run(site.engine, "withdraw", {}) as run:
        result = withdraw_patient(site, patient_id, operator=_operator())
        run.counts = {
            "patient_pseudonym": result["patient_pseudonym"],
            "rows": result["rows"],
            "image_folders": result["image_folders"],
        }
    if json_out:
        emit_json(result)
    else:
        typer.echo(
            f"withdrew {result['patient_pseudonym']}: {sum(result['rows'].values())} rows, "
            f"{result['image_folders']} image folder(s)"
        )


def register(app: typer.Typer) -> None:
    """Attach the clinical commands to ``app``."""
    app.command("fhir")(fhir)
    app.command("csv")(csv_command)
    app.command("withdraw")(withdraw)
    app.add_typer(omop_app, name="omop")
