"""Tesseract OCR for burned-in text: word boxes from an 8-bit image, through the ``tesseract`` CLI.

The image goes to ``tesseract stdin stdout --psm 11 tsv`` as a binary PGM on standard input, so
nothing is written to disk (the pixels may show a patient's name). ``--psm 11`` (sparse text) finds
words scattered over an image rather than a page of prose. OpenMP is limited to one thread per call:
the de-identification runner already keeps every core busy with one file per worker.

Nothing read here is logged: a recognised word may be PHI. Errors name the step, never the text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TESSERACT = "tesseract"
TIMEOUT_S = 120
#: Tesseract's binarisations: 0 global Otsu, 1 tiled adaptive Otsu, 2 Sauvola (local). They read
#: different text: Otsu misses light text on a coloured banner that Sauvola reads, and the other way
#: round for text on a noisy image, so both passes run and their words are united.
THRESHOLDING_METHODS = (0, 2)


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed, not on PATH, or failed: the caller must fail closed."""


@dataclass(frozen=True)
class Word:
    """One recognised word: its box in the image given to OCR, confidence 0-100, and text."""

    left: int
    top: int
    width: int
    height: int
    conf: float
    text: str


def tesseract_path() -> str | None:
    """The tesseract executable on PATH, or None."""
    return shutil.which(TESSERACT)


@lru_cache(maxsize=4)
def _version(path: str) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argument list, path from shutil.which
            [path, "--version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    first = (proc.stdout or proc.stderr).decode("ascii", "replace").splitlines()
    return first[0].strip() if first else ""


def tesseract_version() -> str:
    """``tesseract 5.3.0`` or similar; empty when tesseract is unavailable."""
    path = tesseract_path()
    return _version(path) if path else ""


def _pgm(gray: np.ndarray) -> bytes:
    rows, cols = gray.shape
    return b"P5\n%d %d\n255\n" % (cols, rows) + np.ascontiguousarray(gray, dtype=np.uint8).tobytes()


def _parse_tsv(text: str) -> list[Word]:
    words: list[Word] = []
    for line in text.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) != 12 or cols[0] != "5" or not cols[11].strip():
            continue
        try:
            left, top, width, height = (int(c) for c in cols[6:10])
            conf = float(cols[10])
        except ValueError:
            continue
        words.append(Word(left, top, width, height, conf, cols[11].strip()))
    return words


def read_words(gray: np.ndarray, method: int = 0, psm: int = 11) -> list[Word]:
    """Words tesseract finds in ``gray`` (2-D uint8), with one binarisation method.

    Args:
        gray: the image, 2-D, uint8.
        method: tesseract's ``thresholding_method`` (see :data:`THRESHOLDING_METHODS`).
        psm: page segmentation mode (11: sparse text).

    Returns:
        The words, boxes in ``gray``'s pixel coordinates.

    Raises:
        OcrUnavailable: tesseract is missing, timed out or exited with an error.
    """
    path = tesseract_path()
    if path is None:
        raise OcrUnavailable("tesseract is not on PATH")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    cmd = [path, "stdin", "stdout", "--psm", str(psm), "-c", f"thresholding_method={method}", "tsv"]
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argument list, path from shutil.which
            cmd, input=_pgm(gray), capture_output=True, timeout=TIMEOUT_S, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        raise OcrUnavailable("tesseract could not be run") from None
    if proc.returncode != 0:
        raise OcrUnavailable(f"tesseract exited with status {proc.returncode}")
    return _parse_tsv(proc.stdout.decode("utf-8", "replace"))


def read_all(gray: np.ndarray) -> list[Word]:
    """Words of every binarisation pass in :data:`THRESHOLDING_METHODS`, united."""
    words: list[Word] = []
    for method in THRESHOLDING_METHODS:
        words += read_words(gray, method)
    return words
