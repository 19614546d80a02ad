"""Burn text (digits) into pixels, as ultrasound machines and screen captures do."""

from __future__ import annotations

import numpy as np

# 3x5 glyphs, one string of 15 bits per digit, row-major
_GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
}
SCALE = 2
ADVANCE = 4 * SCALE  # glyph width 3 plus one column of space


def text_width(text: str) -> int:
    """Pixels needed for ``text`` (digits and spaces)."""
    return len(text) * ADVANCE


def burn_digits(img: np.ndarray, text: str, top: int, left: int, value: int = 255) -> None:
    """Draw the digits of ``text`` into ``img`` (rows, columns[, samples]) in place; other characters
    become spaces."""
    for i, char in enumerate(text):
        bits = _GLYPHS.get(char)
        if bits is None:
            continue
        glyph = np.array([int(b) for b in bits], dtype=bool).reshape(5, 3)
        glyph = np.kron(glyph, np.ones((SCALE, SCALE), dtype=bool))
        x = left + i * ADVANCE
        region = img[top : top + glyph.shape[0], x : x + glyph.shape[1]]
        region[glyph] = value
