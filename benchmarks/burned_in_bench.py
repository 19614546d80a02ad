"""Burned-in text benchmark: OCR redaction against today's quarantine, on synthetic and public images.

Corpus, built in memory:

* synthetic images (``site_node.synthetic.text_images``) with identifiers drawn in several fonts
  (DejaVu, Liberation, Noto from Debian's fonts-dejavu / fonts-liberation / fonts-noto packages when
  installed, PIL's bundled font always), sizes 10-22 px, colours and positions: ultrasound cine loops
  (speckle that changes every frame, 8-bit grey), single ultrasound frames in RGB, screen captures
  in RGB (light text on dark, dark text on light) and 16-bit grey;
* pydicom's bundled ultrasound and secondary-capture files (real devices: Philips CX50 palette
  colour, GE LOGIQ 700 RGB and JPEG 2000, SonoSite cine in JPEG YBR), with the identifying strings
  visible in them listed by hand.

For each image, in one run: ``quarantine`` (what the platform did before: every risky instance set
aside) and ``redact`` (``site_node.deid.burned_in.clean_pixels``, the function the deid runner calls).
Reported: images written rather than quarantined (goal >= 90 %), planted tokens still readable by OCR
after redaction (goal 0; read by tesseract with the redactor's settings and, independently, with
page segmentation mode 6 on a 2x enlargement), pixels changed outside the redaction rectangles
(goal 0), the share of the image blanked, and OCR time apart from the rest.

Run: ``.venv/bin/python benchmarks/burned_in_bench.py [--synthetic 40] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from site_node.deid import burned_in, ocr
from site_node.deid import pixels as P
from site_node.deid.engine import QuarantineError
from site_node.deid.writer import encode_file
from site_node.synthetic import text_images as T

warnings.simplefilter("ignore")
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/noto",
)
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationMono-Regular.ttf",
    "LiberationSerif-Bold.ttf",
    "NotoSansMono-Regular.ttf",
)
SIZES = (10, 12, 14, 16, 22)
NAMES = ("KOWALCZYK^ANNA", "OKAFOR^EMEKA", "LINDQVIST^SVEN", "MORETTI^GIULIA", "FAIRWEATHER^ROSE")
#: Public files: (name, modality to present it as, identifying strings visible in the image).
PUBLIC = (
    ("examples_palette.dcm", "US", ["5/25/2011", "11-05-25-142825", "Healthcare", "2:56:22"]),
    ("examples_jpeg2k.dcm", "US", ["BAPTIST", "630P630", "MSCSKEL", "78DR78"]),
    ("examples_rgb_color.dcm", "US", ["BAPTIST", "MSCSKEL", "78DR78"]),
    ("examples_ybr_color.dcm", "US", ["Page"]),
    ("ExplVR_BigEnd.dcm", "US", []),
    ("SC_rgb_rle.dcm", "SC", []),
    ("SC_rgb_jpeg_dcmtk.dcm", "SC", []),
    ("GDCMJ2K_TextGBR.dcm", "SC", []),
)


@dataclass
class Case:
    """One benchmark image."""

    name: str
    kind: str
    ds_bytes: bytes
    tokens: list[str]
    outcome: str = ""
    reason: str = ""
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    outside: int = 0
    blanked: float = 0.0
    ocr_s: float = 0.0
    total_s: float = 0.0
    frames: int = 1


def _fonts() -> list[str | None]:
    found: list[str | None] = [None]
    for name in FONT_FILES:
        for folder in FONT_DIRS:
            if (Path(folder) / name).exists():
                found.append(str(Path(folder) / name))
                break
    return found


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def synthetic(count: int) -> list[Case]:
    """``count`` images cycling through kinds, fonts, sizes, colours and positions."""
    fonts, rng, cases = _fonts(), np.random.default_rng(17), []
    kinds = ("us_cine", "us_rgb", "sc_dark", "sc_light", "sc_16bit")
    for i in range(count):
        kind, typeface, size = kinds[i % 5], fonts[i % len(fonts)], SIZES[(i // 2) % len(SIZES)]
        if kind == "us_cine":
            image = T.TextImage(T.ultrasound_frames(240, 320, 3, seed=i))
        elif kind == "us_rgb":
            image = T.TextImage(T.ultrasound_frames(480, 640, 1, seed=i, colour=True))
        else:
            image = T.TextImage(
                T.screen_frames(384, 512, colour=kind != "sc_16bit", light=kind == "sc_light")
            )
        rows, cols = image.frames.shape[1:3]
        colours = {
            "us_cine": [255, 200, 160],
            "us_rgb": [(255, 255, 255), (255, 255, 0), (0, 255, 0)],
            "sc_dark": [(255, 255, 255), (0, 255, 255), (255, 160, 0)],
            "sc_light": [(0, 0, 0), (0, 0, 160), (140, 0, 0)],
            "sc_16bit": [255, 220, 180],
        }[kind]
        name = NAMES[i % len(NAMES)]
        mrn = f"{rng.integers(10**6, 10**7)}"
        date = f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/20{rng.integers(10, 25)}"
        face = T.font(typeface, size)
        spots = [(6, 4), (cols // 2, 4), (6, rows - size - 8), (cols // 3, rows // 2)]
        corner = i % 4
        T.burn(image, name, spots[corner], face, colours[0])
        T.burn(image, f"ID {mrn}", spots[(corner + 1) % 4], face, colours[1 % len(colours)])
        T.burn(image, date, spots[(corner + 2) % 4], face, colours[2 % len(colours)])
        frames = image.frames
        if kind == "sc_16bit":
            frames = T.to_16bit(frames)
        ds = T.dataset(
            frames, "US" if kind.startswith("us") else "SC", bits_stored=12 if kind == "sc_16bit" else 8
        )
        tokens = [t for p in image.planted for t in p.tokens]
        label = f"{kind}/{Path(typeface).stem if typeface else 'pil-default'}/{size}px"
        cases.append(Case(label, kind, _bytes(ds), tokens, frames=int(frames.shape[0])))
    return cases


def public() -> list[Case]:
    """pydicom's ultrasound and secondary-capture files, flagged BurnedInAnnotation YES."""
    cases = []
    for name, modality, tokens in PUBLIC:
        ds = pydicom.dcmread(get_testdata_file(name), force=True)
        ds.BurnedInAnnotation = "YES"
        ds.Modality = ds.get("Modality") or modality
        cases.append(
            Case(
                f"pydicom/{name}", "public", _bytes(ds), tokens, frames=int(ds.get("NumberOfFrames", 1) or 1)
            )
        )
    return cases


def _norm(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def read_tokens(ds: Dataset, tokens: list[str]) -> list[str]:
    """Tokens OCR reads in any frame: redactor settings (psm 11, two binarisations) and psm 6 at 2x."""
    if not tokens:
        return []
    px = P.load(ds)
    words: set[str] = set()
    for frame in range(px.frames):
        grey = P.render(px, ds, frame)
        rows, cols = grey.shape
        for scale, psm in ((burned_in.ocr_scale(rows, cols), 11), (2, 6)):
            large = np.asarray(Image.fromarray(grey).resize((cols * scale, rows * scale), Image.BICUBIC))
            found = ocr.read_all(large) if psm == 11 else ocr.read_words(large, 0, psm=6)
            words |= {_norm(w.text) for w in found}
    return [t for t in tokens if _norm(t) and any(_norm(t) in w for w in words)]


def run_case(case: Case) -> None:
    """Redact one image and measure it."""
    ds = pydicom.dcmread(io.BytesIO(case.ds_bytes))
    try:
        case.before = read_tokens(ds, case.tokens)
        before = P.load(ds).values.copy()
    except P.PixelsUnsupported:
        before = None
    start = time.perf_counter()
    try:
        result = burned_in.clean_pixels(ds, "(0028,0301)")
    except QuarantineError as exc:
        case.outcome, case.reason = "quarantined", exc.reason
        case.total_s = time.perf_counter() - start
        return
    case.total_s, case.ocr_s = time.perf_counter() - start, result.ocr_seconds
    case.outcome = "written"
    out = pydicom.dcmread(io.BytesIO(encode_file(ds)))  # as the deid runner writes it
    after = P.load(out).values
    inside = np.zeros(after.shape[:3], dtype=bool)
    for frame, top, bottom, left, right in result.rects:
        inside[frame, top:bottom, left:right] = True
    if before is not None:
        diff = before != after if before.shape == after.shape else np.ones(after.shape, dtype=bool)
        diff = diff.any(axis=-1) if diff.ndim == 4 else diff
        case.outside = int((diff & ~inside).sum())
    case.blanked = float(inside.mean())
    case.after = read_tokens(out, case.tokens)


def _table(cases: list[Case], title: str) -> list[str]:
    n = len(cases)
    written = [c for c in cases if c.outcome == "written"]
    planted = sum(len(c.tokens) for c in cases)
    readable = sum(len(c.before) for c in cases)
    leaks = sum(len(c.after) for c in written)
    frames = sum(c.frames for c in written) or 1
    ocr_s = sum(c.ocr_s for c in written)
    other_s = sum(c.total_s - c.ocr_s for c in written)
    reasons: dict[str, int] = {}
    for c in cases:
        if c.reason:
            reasons[c.reason] = reasons.get(c.reason, 0) + 1
    blanked = np.median([c.blanked for c in written]) if written else 0.0
    header = (
        "| setting | written | quarantined | planted tokens readable before -> after "
        "| pixels changed outside rectangles | median image share blanked "
        "| OCR s/frame (wall) | other s/frame |"
    )
    share = f"{len(written)}/{n} ({100 * len(written) / max(1, n):.0f} %)"
    redact = (
        f'| `burned_in_text = "redact"` | {share} | {n - len(written)} {reasons or ""} '
        f"| {readable} -> {leaks} | {sum(c.outside for c in written)} | {100 * blanked:.1f} % "
        f"| {ocr_s / frames:.2f} | {other_s / frames:.2f} |"
    )
    before = f'| `burned_in_text = "quarantine"` (before) | 0/{n} (0 %) | {n} | {planted} planted | - | - | - | - |'  # noqa: E501
    return [f"### {title} ({n} images)", "", header, "|---|---|---|---|---|---|---|---|", before, redact, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synthetic", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"tesseract: {ocr.tesseract_version() or 'NOT INSTALLED (every image is quarantined)'}")
    groups = {"synthetic": synthetic(args.synthetic), "public (pydicom test files)": public()}
    for cases in groups.values():
        for case in cases:
            run_case(case)
            print(f"{case.name}: {case.outcome} {case.reason} {case.total_s:.1f} s", file=sys.stderr)
    lines = []
    for title, cases in groups.items():
        lines += _table(cases, title)
    lines.append("Per image (outcome, tokens readable after / before, blanked share, seconds):")
    for cases in groups.values():
        for c in cases:
            lines.append(
                f"- {c.name}: {c.outcome} {c.reason} {len(c.after)}/{len(c.before)} "
                f"{100 * c.blanked:.1f} % {c.total_s:.1f} s"
            )
    print("\n".join(lines))
    if args.json:
        rows = [{k: v for k, v in vars(c).items() if k != "ds_bytes"} for cs in groups.values() for c in cs]
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
