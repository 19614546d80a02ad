"""DICOM de-identification benchmark: our engine against the Python peers, and scan every output for leaks.

Builds a corpus of at least 2,000 files with planted PHI -- three synthetic hospitals
(``site_node.synthetic``, truth.json lists what was planted) plus copies of pydicom's bundled test
files (several modalities and transfer syntaxes) with planted names, IDs, addresses, free text,
private tags and UIDs -- then, in one run, times:

* ``fedimaging`` (this project), 1 worker and all cores, through ``run_deid``;
* pydicom read + write only (the floor: it de-identifies nothing);
* dicognito, deid (default recipe) and dicom-anonymizer (installed by the ``bench`` extra);

and scans every byte of every output file and every output path of every tool for every planted
value. Values that our default profile keeps on purpose (time of day under Retain Longitudinal
Modified Dates, station names under Retain Device Identity) are not counted as leaks for any tool.
A planted date counts only in an output of its own patient (a shifted date of one patient can equal
another patient's original date by chance); every other planted value counts wherever it appears.
Burned-in-risk classes are cleared for our engine here so that every tool processes every file.

With a real corpus (``benchmarks/real_corpus.py``, default ``bench-output/real_corpus``) its files are
planted too (``deid_real.py``), and each tool's output is also checked for what research needs:
dcm2niix series parity with the planted originals (series outside the burned-in classes,
``dcm2niix_parity.py``) and enhanced MR files whose MR timing functional group still has
RepetitionTime and FlipAngle. Ours (one worker), the floor and dicognito run ``--repeat`` times
(best kept) for the speed ratios.

Run: ``.venv/bin/python benchmarks/deid_bench.py [--synth-patients 8] [--total 2000] [--keep DIR]
[--real DIR] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import pydicom
from dcm2niix_parity import group_signatures, series_parity
from deid_real import plant_real, reset, timing_kept
from pydicom.data import get_testdata_file

warnings.simplefilter("ignore")
TEST_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "693_J2KI.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "liver_1frame.dcm",
    "test-SR.dcm",
    "SC_rgb_rle.dcm",
    "examples_ybr_color.dcm",
    "JPEGLSNearLossless_16.dcm",
    "waveform_ecg.dcm",
]
FAMILY = [
    "Abernathy",
    "Blackwood",
    "Castellanos",
    "Dunmore",
    "Ellingham",
    "Fairweather",
    "Greystoke",
    "Holloway",
    "Ivanova",
    "Jorgensen",
    "Kowalczyk",
    "Lindqvist",
]
GIVEN = ["Araminta", "Barnaby", "Cordelia", "Desmond", "Evangeline", "Florian", "Griselda", "Hamish"]
RETAINED_KINDS_SUFFIX = ("_time",)
RETAINED_KINDS = {"station_name"}
PEERS = ("dicognito", "dicom-anonymizer", "deid (default recipe)")


# ----------------------------------------------------------------------------- corpus


def _plant(ds: pydicom.Dataset, i: int, needles: set[str]) -> None:
    patient = i // 6
    family, given = FAMILY[patient % len(FAMILY)] + f"x{patient}", GIVEN[patient % len(GIVEN)]
    values = {
        "PatientID": f"BMRN{patient:07d}",
        "PatientName": f"{family}^{given}",
        "AccessionNumber": f"BACC{i // 3:07d}",
        "InstitutionName": "Saint Benchmark Infirmary",
        "ReferringPhysicianName": "Quillfeather^Ottoline",
        "PatientBirthDate": f"19{40 + patient % 50:02d}0611",
        "PatientAddress": f"{patient} Benchmark Lane",
        "OtherPatientIDs": f"SSN{patient:09d}",
        "StudyDescription": f"CT CHEST W CONTRAST follow-up for {given} {family}",
        "OperatorsName": "Pemberton^Wilhelmina",
        "ImageComments": f"called {given} on 0612{patient:06d}",
        "PatientComments": f"{family} prefers mornings",
    }
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    block = ds.private_block(0x0009, "BENCH PLANTED", create=True)
    block.add_new(0x10, "LO", f"BMRN{patient:07d}")
    block.add_new(0x11, "LO", f"{given} {family}")
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.8888.1.{i // 3}"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.9.8888.2.{i}"
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.8888.3.{i}"
    for keyword in (
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "InstitutionName",
        "PatientBirthDate",
        "PatientAddress",
        "OtherPatientIDs",
        "PatientComments",
    ):
        needles.add(str(values[keyword]))
    needles.update(
        [
            family,
            given,
            "Quillfeather",
            "Pemberton",
            f"0612{patient:06d}",
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
        ]
    )


def build_pydicom_part(root: Path, count: int) -> set[str]:
    """``count`` planted copies of pydicom's test files; returns the planted values."""
    needles: set[str] = set()
    sources = [pydicom.dcmread(get_testdata_file(name)) for name in TEST_FILES]
    for i in range(count):
        ds = sources[i % len(sources)]
        _plant(ds, i, needles)
        folder = root / f"BMRN{i // 6:07d}" / f"study{i // 3}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"BMRN{i // 6:07d}_{i}.dcm", enforce_file_format=True)
    return needles


def build_synthetic_part(root: Path, patients: int) -> set[str]:
    """Three synthetic hospitals; returns their planted DICOM values (truth.json)."""
    from site_node.synthetic import generate_site

    needles: set[str] = set()
    for style in ("a", "b", "c"):
        out = root / f"synth_{style}"
        generate_site(out, patients=patients, seed=2026, style=style)
        truth = json.loads((out / "truth.json").read_text())
        for entry in truth["phi"]:
            if not any(loc["file"].startswith("dicom/") for loc in entry["locations"]):
                continue
            if entry["kind"] in RETAINED_KINDS or entry["kind"].endswith(RETAINED_KINDS_SUFFIX):
                continue
            needles.add(str(entry["value"]))
        shutil.rmtree(out / "fhir", ignore_errors=True)
        shutil.rmtree(out / "crf", ignore_errors=True)
        (out / "truth.json").unlink()
    return needles


def build_corpus(root: Path, synth_patients: int, total: int) -> tuple[list[Path], set[str]]:
    """Synthetic hospitals first, then pydicom-derived files up to ``total``."""
    needles = build_synthetic_part(root / "synthetic", synth_patients)
    have = sum(1 for p in root.rglob("*") if p.is_file())
    needles |= build_pydicom_part(root / "pydicom", max(total - have, len(TEST_FILES) * 20))
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return files, {n for n in needles if len(n) >= 4}


# ----------------------------------------------------------------------------- tools


def _read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, force=True)


def tool_floor(files: list[Path], out: Path) -> int:
    """pydicom read + write, nothing else."""
    errors = 0
    for i, path in enumerate(files):
        try:
            ds = _read(path)
            ds.save_as(out / f"{i}.dcm")
        except Exception:
            errors += 1
    return errors


def tool_dicognito(files: list[Path], out: Path) -> int:
    """dicognito's Anonymizer on each dataset."""
    from dicognito.anonymizer import Anonymizer

    anonymizer, errors = Anonymizer(), 0
    for i, path in enumerate(files):
        try:
            ds = _read(path)
            anonymizer.anonymize(ds)
            ds.save_as(out / f"{i}.dcm")
        except Exception:
            errors += 1
    return errors


def tool_dicom_anonymizer(files: list[Path], out: Path) -> int:
    """Kitware's dicom-anonymizer (2024b rules)."""
    from dicomanonymizer import anonymize_dataset

    errors = 0
    for i, path in enumerate(files):
        try:
            ds = _read(path)
            anonymize_dataset(ds, delete_private_tags=True)
            ds.save_as(out / f"{i}.dcm")
        except Exception:
            errors += 1
    return errors


def tool_deid(files: list[Path], out: Path) -> int:
    """pydicom/deid with its default recipe."""
    import logging

    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    logging.getLogger("deid").setLevel(logging.CRITICAL)
    recipe, errors = DeidRecipe(), 0
    for i, path in enumerate(files):
        try:
            parsed = replace_identifiers(dicom_files=[str(path)], deid=recipe, save=False)
            for ds in parsed:
                ds.save_as(out / f"{i}.dcm")
        except Exception:
            errors += 1
    return errors


def _ours(workers: int, key_home: Path, corpus: Path) -> Callable[[list[Path], Path], int]:
    def run(files: list[Path], out: Path) -> int:
        from site_node.deid import run_deid
        from site_node.home import open_site

        site = open_site(key_home)
        summary = run_deid(site, corpus, out, workers=workers)
        assert summary.files_seen == len(files)
        return summary.quarantined_total

    return run


# ----------------------------------------------------------------------------- leak scan


_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{4,}")


def _text_of(path: str) -> bytes:
    """Every run of 4+ printable bytes of a file, upper-cased (a planted value can only be in one)."""
    data = Path(path).read_bytes()
    return b"\n".join(_PRINTABLE_RUN.findall(data)).upper()


_DATE_NEEDLE = re.compile(rb"\d{8}")
_DIGIT_RUN = re.compile(rb"(?<!\d)\d{8}")


def _source_record(path: str) -> tuple[str, list[str]]:
    """PatientID of one corpus file and every 8-digit run in its bytes (its dates among them)."""
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    runs = {m.decode() for m in _DIGIT_RUN.findall(_text_of(path))}
    return str(ds.get("PatientID", "")), sorted(runs)


@dataclass
class Owners:
    """Which patient each output file comes from, and each patient's planted dates.

    A date is a number any patient may have: one patient's shifted study date can equal another
    patient's original one. So a planted *date* counts as leaked only in an output of the patient
    who had it; names, IDs, UIDs and free text count wherever they appear.
    """

    patient_of_input: list[str]
    dates: dict[str, set[bytes]]
    patient_of_pseudonym: dict[str, str]

    def patient_of(self, out: Path, path: Path) -> str | None:
        """The source patient of an output: peers write ``<input index>.dcm``; ours is found through
        the patient pseudonym it carries (computed with the bench's own site key)."""
        if path.stem.isdigit() and path.parent == out:
            return self.patient_of_input[int(path.stem)]
        try:
            pseudonym = str(pydicom.dcmread(path, force=True, stop_before_pixels=True).get("PatientID", ""))
        except Exception:
            return None
        return self.patient_of_pseudonym.get(pseudonym)


def owners(files: list[Path], needles: set[str], key_home: Path, pool: Pool) -> Owners:  # type: ignore[valid-type]
    """:class:`Owners` of the corpus (read once)."""
    from common.crypto import Pseudonymizer, load_key

    records = pool.map(_source_record, [str(p) for p in files], chunksize=16)
    dates: dict[str, set[bytes]] = {}
    for patient, values in records:
        dates.setdefault(patient, set()).update(v.encode() for v in values if v in needles)
    pz = Pseudonymizer(load_key(key_home / "phi" / "site.key"))
    return Owners([r[0] for r in records], dates, {pz.patient(pid): pid for pid in dates if pid})


def scan(out: Path, needles: set[str], pool: Pool, owned: Owners) -> tuple[int, int]:  # type: ignore[valid-type]
    """(files with at least one planted value, distinct planted values found), case-insensitive.

    Every byte of every output file is read; planted values are printable ASCII, so they can only
    occur inside runs of printable bytes, which are searched (plus the output paths). Dates count
    only in outputs of their own patient (see :class:`Owners`), at the start of a digit run.
    """
    encoded = sorted({n.upper().encode() for n in needles})
    dates = {n for n in encoded if _DATE_NEEDLE.fullmatch(n)}
    files = [p for p in out.rglob("*") if p.is_file()]
    texts = pool.map(_text_of, [str(p) for p in files], chunksize=16)
    texts = [t + b"\n" + str(p.relative_to(out)).upper().encode() for p, t in zip(files, texts, strict=True)]
    combined = b"\x00".join(texts)
    others = [n for n in encoded if n not in dates and n in combined]
    found: set[bytes] = set(others)
    leaky = 0
    for path, text in zip(files, texts, strict=True):
        own = owned.dates.get(owned.patient_of(out, path) or "", set())
        mine = {d for d in own if re.search(rb"(?<!\d)" + d, text)}  # also a DT value's date part
        found |= mine
        leaky += bool(mine) or any(n in text for n in others)
    return leaky, len(found)


# ----------------------------------------------------------------------------- main


SPEED_TOOLS = ("fedimaging (1 worker)", "pydicom read+write (floor)", "dicognito")


@dataclass
class Row:
    """One tool's figures (speed: best of the repeats)."""

    name: str
    rate: float
    cpu_rate: float
    errors: int
    leaky: int
    distinct: int
    parity: tuple[int, int] | None = None
    timing: tuple[int, int] | None = None


def _real_part(work: Path, real: Path | None) -> tuple[set[str], Path | None]:
    """Planted copies of the real corpus under ``work/corpus/real`` (None when there is none)."""
    if real is None or not real.exists():
        return set(), None
    needles, count = plant_real(real, work / "corpus" / "real")
    print(f"real corpus: {count} DICOM files planted from {real}")
    return needles, work / "corpus" / "real" / "ok"


def _series_of_inputs(files: list[Path], real_ok: Path | None) -> list[str | None]:
    """The SeriesInstanceUID of each corpus file of the real part outside burned-in classes.

    pydicom's test files are left out of the parity: they are test objects, not scanner series (one
    series UID is shared by a dozen unrelated files in different transfer syntaxes).
    """
    series: list[str | None] = []
    for path in files:
        if real_ok is None or real_ok not in path.parents or (real_ok / "pydicom") in path.parents:
            series.append(None)
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        series.append(str(ds.get("SeriesInstanceUID", "")) or None)
    return series


def _groups(series_of: list[str | None], files: list[Path]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for uid, path in zip(series_of, files, strict=True):
        if uid:
            groups.setdefault(uid, []).append(path)
    return groups


def _output_groups(out: Path, series_of: list[str | None], home: Path, ours: bool) -> dict[str, list[Path]]:
    """Output files grouped by the series of the input they came from: peers write ``<index>.dcm``;
    ours writes ``<patient>/<study>/<remapped series UID>/...``, mapped back with the bench's key."""
    groups: dict[str, list[Path]] = {}
    if not ours:
        for path in out.glob("*.dcm"):
            uid = series_of[int(path.stem)] if path.stem.isdigit() else None
            if uid:
                groups.setdefault(uid, []).append(path)
        return groups
    from common.crypto import Pseudonymizer, load_key

    pz = Pseudonymizer(load_key(home / "phi" / "site.key"))
    back = {pz.uid(uid): uid for uid in set(series_of) if uid}
    for path in out.rglob("*.dcm"):
        uid = back.get(path.parent.name)
        if uid:
            groups.setdefault(uid, []).append(path)
    return groups


def _setup_home(work: Path) -> Path:
    from site_node.home import init_home

    key_home = work / "home"
    if key_home.exists():
        shutil.rmtree(key_home)
    init_home(key_home, "bench")
    toml = key_home / "site.toml"
    toml.write_text(
        toml.read_text().replace(
            "cleared_burned_in = []",
            'cleared_burned_in = ["US", "OT", "SC", "NM", "1.2.840.10008.5.1.4.1.1.7", '
            '"1.2.840.10008.5.1.4.1.1.7.4", "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1"]',
        )
    )
    return key_home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth-patients", type=int, default=8, help="patients per synthetic hospital")
    parser.add_argument("--total", type=int, default=2000, help="minimum corpus size")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--skip", nargs="*", default=[], help="tools to skip (e.g. deid)")
    parser.add_argument(
        "--real", type=Path, default=Path("bench-output/real_corpus"), help="real files (real_corpus.py)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours, the floor and dicognito (best)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="deid_bench_"))
    corpus = work / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    started = time.perf_counter()
    real_needles, real_ok = _real_part(work, args.real)
    files, needles = build_corpus(corpus, args.synth_patients, args.total)
    needles |= {n for n in real_needles if len(n) >= 4}
    print(
        f"corpus: {len(files)} files, {len(needles)} planted values, built in "
        f"{time.perf_counter() - started:.0f} s ({work})"
    )
    key_home = _setup_home(work)
    series_of = _series_of_inputs(files, real_ok)
    originals = group_signatures(_groups(series_of, files)) if real_ok else None
    timing_in = timing_kept(real_ok) if real_ok else None
    if timing_in:
        print(f"enhanced MR inputs with RepetitionTime and FlipAngle: {timing_in[0]}/{timing_in[1]}")
    cores = os.cpu_count() or 1
    tools: list[tuple[str, Callable[[list[Path], Path], int]]] = [
        ("fedimaging (1 worker)", _ours(1, key_home, corpus)),
        (f"fedimaging ({cores} workers)", _ours(cores, key_home, corpus)),
        ("pydicom read+write (floor)", tool_floor),
        ("dicognito", tool_dicognito),
        ("dicom-anonymizer", tool_dicom_anonymizer),
        ("deid (default recipe)", tool_deid),
    ]
    rows = []
    with Pool(cores) as pool:
        owned = owners(files, needles, key_home, pool)
        for index, (name, tool) in enumerate(tools):
            if any(s in name for s in args.skip):
                continue
            out = work / f"out_{index}"
            best_wall = best_cpu = float("inf")
            for _ in range(args.repeat if name in SPEED_TOOLS else 1):
                reset(out)
                if name.startswith("fedimaging"):
                    _reset_journal(key_home)
                t0, c0 = time.perf_counter(), _cpu()
                errors = tool(files, out)
                best_wall, best_cpu = min(best_wall, time.perf_counter() - t0), min(best_cpu, _cpu() - c0)
            leaky, distinct = scan(out, needles, pool, owned)
            row = Row(name, len(files) / best_wall, len(files) / best_cpu, errors, leaky, distinct)
            if originals is not None and timing_in is not None:
                groups = _output_groups(out, series_of, key_home, ours=name.startswith("fedimaging"))
                row.parity = series_parity(originals, group_signatures(groups))
                row.timing = timing_kept(out)  # inputs sharing a SOP Instance UID give one output of ours
            rows.append(row)
            print(f"  {name}: {row.rate:.1f} files/s", flush=True)
    _print_table(rows, len(files), len(needles))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (worker pools are joined by then)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _reset_journal(home: Path) -> None:
    """Each of our runs starts from an empty journal (otherwise the second run would skip everything)."""
    from sqlalchemy import delete

    from site_node.db import get_engine, ingest_journal

    with get_engine(f"sqlite:///{home / 'site.db'}").begin() as conn:
        conn.execute(delete(ingest_journal))


def _ratio(pair: tuple[int, int] | None) -> str:
    return f"{pair[0]}/{pair[1]} ({pair[0] / max(pair[1], 1):.0%})" if pair else "-"


def _print_table(rows: list[Row], n_files: int, n_needles: int) -> None:
    buf = io.StringIO()
    buf.write(f"\n{n_files} files, {n_needles} planted values scanned in every output byte and path\n\n")
    buf.write(
        "| tool | files/s | files per CPU-s | errors/quarantined | files with a leak "
        "| distinct values leaked | dcm2niix series parity | enhanced MR timing kept |\n"
    )
    buf.write("|---|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        parity_text = _ratio(r.parity)
        timing_text = f"{r.timing[0]}/{r.timing[1]}" if r.timing else "-"
        buf.write(
            f"| {r.name} | {r.rate:.1f} | {r.cpu_rate:.1f} | {r.errors} | {r.leaky} | {r.distinct} "
            f"| {parity_text} | {timing_text} |\n"
        )
    for label, attr in (("wall", "rate"), ("CPU", "cpu_rate")):
        rates = {r.name: float(getattr(r, attr)) for r in rows}
        ours1 = rates.get("fedimaging (1 worker)")
        oursn = next(
            (v for n, v in rates.items() if n.startswith("fedimaging (") and "1 worker" not in n), None
        )
        peers = [v for n, v in rates.items() if n in PEERS]
        floor = rates.get("pydicom read+write (floor)")
        dicognito = rates.get("dicognito")
        buf.write(f"\n{label} time (best of the repeats for ours, the floor and dicognito):\n")
        if ours1 and peers:
            buf.write(f"  single worker vs fastest peer: {ours1 / max(peers):.2f}x\n")
        if ours1 and dicognito:
            buf.write(f"  single worker vs dicognito: {ours1 / dicognito:.2f}x (target >= 2.5x)\n")
        if ours1 and floor:
            buf.write(f"  single worker vs pydicom read+write floor: {ours1 / floor:.2f} (target >= 0.9)\n")
        if ours1 and oursn and label == "wall":
            buf.write(f"  all workers vs one worker: {oursn / ours1:.2f}x\n")
    print(buf.getvalue())


if __name__ == "__main__":
    main()
