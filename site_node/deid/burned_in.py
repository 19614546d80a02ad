"""Burned-in text: find it with OCR, blank it, check again with OCR, or quarantine (fail closed).

For an instance at risk (:mod:`site_node.deid.risk`) and ``[deid] burned_in_text = "redact"``:

1. device banners from ``data/burned_in_banners.json`` (the RSNA CTP approach: rectangles known to
   carry identifiers, by manufacturer, model and image size) are blanked in every frame;
2. every distinct frame is rendered to a contrast-normalised 8-bit grey image, enlarged so that small
   annotation fonts reach the size tesseract reads, and read with two binarisations
   (:mod:`site_node.deid.ocr`); every word box (padded, joined with its neighbours on the line) is
   blanked with the image's background value;
3. the frames that changed are read again, up to :data:`MAX_ROUNDS` times, until OCR finds no word;
   if words remain, or tesseract is missing or fails, or the pixels cannot be decoded or written,
   the instance is quarantined as before.

Only the pixels inside the blanked rectangles change (:mod:`site_node.deid.pixels`). The written
instance says BurnedInAnnotation NO, adds CID 7050 code 113101 (Clean Pixel Data Option) to
DeidentificationMethodCodeSequence and a line to DeidentificationMethod. Nothing read by OCR is
logged or stored: only counts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from common.errors import ConfigError
from site_node.deid import ocr
from site_node.deid import pixels as P
from site_node.deid.engine import QuarantineError

log = logging.getLogger(__name__)

BANNERS_FILE = "burned_in_banners.json"
MAX_ROUNDS = 4
#: OCR is run on images whose shorter side is enlarged to about this many pixels (at most x3):
#: ultrasound annotation fonts are 7-12 px high, tesseract reads 20 px and more reliably.
OCR_SHORT_SIDE = 720
MAX_SCALE = 3
#: A word with a letter or digit is text when OCR is sure of it (:data:`SURE_CONF`, two characters
#: or more), or when OCR has some confidence (:data:`MIN_CONF`) and its box looks like an overlay: a
#: smooth background (at least :data:`FLAT_SHARE` of its pixels differ by at most
#: :data:`SMOOTH_STEP` grey levels from their neighbours), as text on black, on a banner or on a
#: gradient has and ultrasound speckle, which OCR reads as short nonsense words, has not.
MIN_CONF = 0.0
SURE_CONF = 80.0
FLAT_SHARE = 0.4
SMOOTH_STEP = 3
#: Frames read at the same time (each a tesseract process limited to one thread).
OCR_THREADS = max(1, min(4, os.cpu_count() or 1))
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")


@dataclass
class Redaction:
    """What was done to one instance's pixels (counts and rectangles; never the text read)."""

    transfer_syntax: UID
    frames: int
    rects: list[P.Rect] = field(default_factory=list)
    banner_rects: int = 0
    ocr_calls: int = 0
    ocr_seconds: float = 0.0
    rounds: int = 0
    mode: str = ""


@lru_cache(maxsize=8)
def _banner_rules(extra: str | None) -> tuple[dict[str, object], ...]:
    text = (resources.files("site_node.deid.data") / BANNERS_FILE).read_text(encoding="utf-8")
    rules = list(json.loads(text)["banners"])
    if extra:
        try:
            rules += list(json.loads(Path(extra).read_text(encoding="utf-8"))["banners"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(
                "burned_in_banners is not a readable banner file", field="burned_in_banners"
            ) from None
    for rule in rules:
        regions = rule.get("regions")
        if not isinstance(regions, list) or not all(len(r) == 4 for r in regions):
            raise ConfigError("a banner rule has no valid regions", field="burned_in_banners")
    return tuple(rules)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        return "\\".join(str(v) for v in value).upper()
    return str(value).strip().upper()


def banner_regions(ds: Dataset, extra: Path | None = None) -> list[tuple[int, int, int, int]]:
    """Banner rectangles ``(x, y, width, height)`` of the rules that match ``ds``'s device and size."""
    found: list[tuple[int, int, int, int]] = []
    rows, cols = str(ds.get("Rows", "")), str(ds.get("Columns", ""))
    for rule in _banner_rules(str(extra) if extra else None):
        if "modality" in rule and _text(ds, "Modality") != str(rule["modality"]).upper():
            continue
        if "manufacturer" in rule and str(rule["manufacturer"]).upper() not in _text(ds, "Manufacturer"):
            continue
        if "model" in rule and str(rule["model"]).upper() not in _text(ds, "ManufacturerModelName"):
            continue
        if "image_type" in rule and str(rule["image_type"]).upper() not in _text(ds, "ImageType"):
            continue
        if "rows" in rule and str(rule["rows"]) != rows:
            continue
        if "columns" in rule and str(rule["columns"]) != cols:
            continue
        found += [tuple(int(v) for v in region) for region in rule["regions"]]  # type: ignore[attr-defined, misc]
    return found


def ocr_scale(rows: int, cols: int) -> int:
    """The whole-number enlargement applied before OCR."""
    return max(1, min(MAX_SCALE, round(OCR_SHORT_SIDE / max(1, min(rows, cols)))))


def enlarge(grey: np.ndarray, scale: int) -> np.ndarray:
    """``grey`` enlarged ``scale`` times (bicubic), the size OCR reads."""
    if scale <= 1:
        return grey
    rows, cols = grey.shape
    return np.asarray(Image.fromarray(grey).resize((cols * scale, rows * scale), Image.Resampling.BICUBIC))


def _smooth(box: np.ndarray) -> np.ndarray:
    """Per pixel: differs by at most :data:`SMOOTH_STEP` from its right and lower neighbours."""
    box = box.astype(np.int16)
    if box.shape[0] < 2 or box.shape[1] < 2:
        return np.zeros(0, dtype=bool)
    steps = np.maximum(np.abs(np.diff(box, axis=1))[:-1, :], np.abs(np.diff(box, axis=0))[:, :-1])
    return (steps <= SMOOTH_STEP).ravel()


def _flat(grey: np.ndarray, top: int, bottom: int, left: int, right: int, margin: int) -> bool:
    """Whether the word's background is smooth, judged on its box with a one-pixel rim, or on the
    strips beside it on its line (a long word in capitals leaves little background inside its box):
    text on black, on a banner or on a gradient, unlike speckle, which is rough everywhere."""
    top, left = max(0, top), max(0, left)
    inside = _smooth(grey[max(0, top - 1) : bottom + 1, max(0, left - margin) : right + margin])
    if inside.size and float(inside.mean()) >= FLAT_SHARE:
        return True
    sides = [
        _smooth(grey[top:bottom, max(0, left - margin) : left]),
        _smooth(grey[top:bottom, right : right + margin]),
    ]
    sides = [side for side in sides if side.size]  # both sides when both exist: a word at the edge
    return bool(sides) and all(float(side.mean()) >= FLAT_SHARE for side in sides)  # of speckle is not


def text_rects(words: list[ocr.Word], scale: int, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Padded boxes ``(top, bottom, left, right)`` in image pixels of the words that are text (see
    :data:`MIN_CONF`); boxes on one line closer than a character height are joined, which covers
    the gaps between words.

    Args:
        words: OCR words, boxes in the enlarged image.
        scale: the enlargement.
        grey: the 8-bit rendition at image size (for the flat-background test).
    """
    rows = grey.shape[0]
    boxes = []
    for w in words:
        alnum = sum(c.isalnum() for c in w.text)
        if w.conf < MIN_CONF or not alnum:
            continue
        top, left = w.top // scale, w.left // scale
        bottom, right = -(-(w.top + w.height) // scale), -(-(w.left + w.width) // scale)
        if not 3 <= bottom - top <= max(24, rows // 4):
            continue
        sure = w.conf >= SURE_CONF and alnum >= 2
        pad = max(2, (bottom - top + 3) // 4)
        # the background is judged on the word's line, not above or below it (there may be image)
        if not sure and not _flat(grey, top, bottom, left, right, 2 * pad):
            continue
        left, right = _extend_line(grey, max(0, top), bottom, left, right)
        boxes.append([top - pad, bottom + pad, left - pad, right + pad])
    return [tuple(b) for b in _join_lines(boxes)]  # type: ignore[misc]


def _extend_line(grey: np.ndarray, top: int, bottom: int, left: int, right: int) -> tuple[int, int]:
    """Widen a word's box along its line over glyphs OCR did not read (an ID beside a date it read).

    A column of the line's band is blank when it is uniform from top to bottom (black, a banner, a
    horizontal gradient) and inked otherwise. The box grows over inked runs no wider than two line
    heights separated by blank gaps no wider than one and a half: the shape of characters. Speckle
    is inked everywhere, so growth stops at its edge.
    """
    band = grey[top:bottom].astype(np.int16)
    if band.shape[0] < 2:
        return left, right
    inked = (band.max(axis=0) - band.min(axis=0)) > 2 * SMOOTH_STEP
    height = bottom - top

    def reach(start: int, step: int) -> int:
        edge, x, gap, run = start - min(step, 0), start, 0, 0
        while 0 <= x < inked.size:
            if inked[x]:
                run, gap = run + 1, 0
                if run > 2 * height:
                    return edge
            else:
                if run:
                    edge = x if step > 0 else x + 1
                run, gap = 0, gap + 1
                if gap > 1.5 * height:
                    return edge
            x += step
        return (inked.size if step > 0 else 0) if run else edge

    return min(left, reach(left - 1, -1)), max(right, reach(right, 1))


def _join_lines(boxes: list[list[int]]) -> list[list[int]]:
    boxes = sorted(boxes, key=lambda b: (b[2], b[0]))
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                b = boxes[j]
                overlap = min(a[1], b[1]) - max(a[0], b[0])
                height = min(a[1] - a[0], b[1] - b[0])
                gap = max(a[2], b[2]) - min(a[3], b[3])
                if overlap >= 0.5 * height and gap <= height:
                    a[:] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def _read_frame(px: P.Pixels, ds: Dataset, frame: int) -> tuple[np.ndarray, int, list[ocr.Word]]:
    grey = P.render(px, ds, frame)
    scale = ocr_scale(*grey.shape)
    return grey, scale, ocr.read_all(enlarge(grey, scale))


def _sweep(
    px: P.Pixels, ds: Dataset, frames: list[int], out: Redaction, first: dict[int, np.ndarray]
) -> list[int]:
    """OCR ``frames`` (identical frames once, :data:`OCR_THREADS` at a time) and blank what is found.

    ``first`` keeps each changed frame's rendition from before this run blanked anything in it: the
    flat-background test is judged on it (a blanked rectangle would make the speckle beside it look
    flat). Returns the frames that changed.
    """
    keys = {frame: hashlib.sha256(px.values[frame].tobytes()).digest() for frame in frames}
    unique: dict[bytes, int] = {}
    for frame, key in keys.items():
        unique.setdefault(key, frame)
    start = time.perf_counter()
    if len(unique) > 1 and OCR_THREADS > 1:
        with ThreadPoolExecutor(min(OCR_THREADS, len(unique))) as pool:
            reads = list(pool.map(lambda f: _read_frame(px, ds, f), unique.values()))
    else:
        reads = [_read_frame(px, ds, f) for f in unique.values()]
    out.ocr_seconds += time.perf_counter() - start  # wall time of rendering + OCR of these frames
    found: dict[bytes, tuple[list[tuple[int, int, int, int]], np.ndarray]] = {}
    for (key, frame), (grey, scale, words) in zip(unique.items(), reads, strict=True):
        out.ocr_calls += len(ocr.THRESHOLDING_METHODS)
        reference = first.get(frame, grey)
        found[key] = (text_rects(words, scale, reference), reference)
    changed = []
    for frame, key in keys.items():
        rects, reference = found[key]
        if any([px.redact(frame, *r) for r in rects]):  # noqa: C419 - blank every rectangle
            first.setdefault(frame, reference)
            changed.append(frame)
        else:
            first.pop(frame, None)  # verified: its reference rendition is no longer needed
    return changed


def _risk_error(reason: str, message: str, risk: str) -> QuarantineError:
    return QuarantineError(reason, message, field=risk)


def clean_pixels(ds: Dataset, risk: str, extra_banners: Path | None = None) -> Redaction:
    """Blank banners and OCR-found text in every frame of ``ds``, verify by OCR, write the pixels back.

    Args:
        ds: the dataset as read (identifiers still in the header: banners match on device fields).
        risk: the tag that made the instance risky (named in a quarantine reason).
        extra_banners: a site's own banner file, added to the shipped one.

    Returns:
        What was done; ``ds`` holds the redacted pixel data.

    Raises:
        QuarantineError: OCR unavailable, pixels not decodable or writable, or text remains.
    """
    if ocr.tesseract_path() is None:
        raise _risk_error(
            "burned_in_ocr_unavailable", "burned-in text risk and tesseract OCR is unavailable", risk
        )
    try:
        px = P.load(ds)
    except P.PixelsUnsupported as exc:
        raise QuarantineError("burned_in_pixels_unsupported", str(exc), field=exc.field) from None
    out = Redaction(px.source_ts, px.frames, mode=px.mode)
    for x, y, width, height in banner_regions(ds, extra_banners):
        for frame in range(px.frames):
            out.banner_rects += px.redact(frame, y, y + height, x, x + width)
    try:
        todo: list[int] = list(range(px.frames))
        first: dict[int, np.ndarray] = {}
        while todo:
            if out.rounds == MAX_ROUNDS:
                raise _risk_error("burned_in_text_remains", "OCR still reads text after redaction", risk)
            out.rounds += 1
            todo = _sweep(px, ds, todo, out, first)
    except ocr.OcrUnavailable:
        raise _risk_error("burned_in_ocr_unavailable", "tesseract OCR failed", risk) from None
    try:
        out.transfer_syntax = P.save(ds, px)
    except P.PixelsUnsupported as exc:
        raise QuarantineError("burned_in_pixels_unsupported", str(exc), field=exc.field) from None
    out.rects = px.rects
    log.debug(
        "burned-in text: %d rectangles in %d frames, %d OCR calls", len(px.rects), px.frames, out.ocr_calls
    )
    return out


def handle_risk(ds: Dataset, risk: str, mode: str, extra_banners: Path | None = None) -> Redaction:
    """The deid runner's hook for an instance at burned-in-text risk: redact it or quarantine it.

    Raises:
        QuarantineError: ``mode`` is ``quarantine``, or redaction failed closed.
    """
    if mode != "redact":
        raise QuarantineError("burned_in_risk", f"pixel data at risk of burned-in text ({risk})", field=risk)
    return clean_pixels(ds, risk, extra_banners)


def mark_cleaned(ds: Dataset, redaction: Redaction) -> None:
    """After header de-identification: BurnedInAnnotation NO, 113101 and a method line.

    The run's shared marker elements are replaced in this dataset, never changed in place.
    """
    ds.add_new(0x00280301, "CS", "NO")
    methods = ds.get("DeidentificationMethod") or []
    methods = [methods] if isinstance(methods, str) else list(methods)
    lines = [f"burned-in text: {len(redaction.rects)} areas blanked ({ocr.tesseract_version()})"[:64]]
    if redaction.rects and redaction.mode == "uncompressed":
        lines.append("pixel data rewritten as Explicit VR Little Endian")
    ds.add_new(0x00120063, "LO", [str(m) for m in methods] + lines)
    items = copy.deepcopy(list(ds.get("DeidentificationMethodCodeSequence") or []))
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
        CLEAN_PIXEL_CODE[0],
        "DCM",
        CLEAN_PIXEL_CODE[1],
    )
    ds.add_new(0x00120064, "SQ", Sequence([*items, code]))
