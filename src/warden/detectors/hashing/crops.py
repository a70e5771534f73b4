"""The crop stage: what PDQ alone misses.

PDQ hashes the whole frame, so a copy cropped by more than a few percent, or padded with a
border, lands far from the original (benchmarks/hash_matching.py measures how far). Two
cheap additions recover much of it, both still exact PDQ lookups in the same index:

* bank side - `crop_variant_hashes`: when banking an image, also bank the PDQ hashes of a
  fixed grid of sub-windows (central crops, corner crops, one-side crops). A cropped copy
  is then close to the banked window nearest its crop. Cost: the bank grows by
  `len(CROP_GRID)` (14) hashes per image and so does the chance of a false match; the benchmark
  reports both recall and the false-match rate with the grid.
* query side - `trim_border`: strip uniform margins (letterboxing, added frames) before
  hashing, so a bordered copy hashes like the original.

Crops far off the grid, or heavy crops (> ~25% per side), still miss: local features
(keypoints) would be the next stage; see docs/hashing.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warden.detectors.hashing.pdq import PdqHash, pdq_from_array


@dataclass(frozen=True, slots=True)
class CropWindow:
    """Fractions of the width/height removed from each side."""

    name: str
    left: float
    top: float
    right: float
    bottom: float

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        x0, y0 = round(width * self.left), round(height * self.top)
        x1, y1 = width - round(width * self.right), height - round(height * self.bottom)
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _grid() -> tuple[CropWindow, ...]:
    out = [CropWindow(f"center{round(s * 100)}", s, s, s, s) for s in (0.04, 0.08, 0.12, 0.16, 0.20, 0.25)]
    c = 0.10
    out += [CropWindow("corner_tl", 0, 0, c, c), CropWindow("corner_tr", c, 0, 0, c),
            CropWindow("corner_bl", 0, c, c, 0), CropWindow("corner_br", c, c, 0, 0)]
    s = 0.12
    out += [CropWindow("side_l", s, 0, 0, 0), CropWindow("side_r", 0, 0, s, 0), CropWindow("side_t", 0, s, 0, 0),
            CropWindow("side_b", 0, 0, 0, s)]
    return tuple(out)


#: The sub-windows banked per image: 6 central, 4 corner and 4 one-side crops (14).
CROP_GRID: tuple[CropWindow, ...] = _grid()


def crop(rgb: np.ndarray, window: CropWindow) -> np.ndarray:
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = window.box(w, h)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def crop_variant_hashes(rgb: np.ndarray, *, grid: tuple[CropWindow, ...] = CROP_GRID) -> list[tuple[str, PdqHash]]:
    """(window name, PDQ hash) for each window of the grid."""
    return [(w.name, pdq_from_array(crop(rgb, w))) for w in grid]


def trim_border(rgb: np.ndarray, *, tolerance: int = 10, max_fraction: float = 0.4,
                min_fraction: float = 0.01) -> np.ndarray | None:
    """The image without uniform margins, or None when it has none worth trimming.

    A margin is a run of rows/columns from an edge whose pixels all lie within `tolerance`
    of the corner colour; at most `max_fraction` of a side is removed (a mostly flat image is
    not "all border"), and margins thinner than `min_fraction` are ignored.
    """
    h, w = rgb.shape[:2]
    if h < 8 or w < 8:
        return None
    arr = rgb.astype(np.int16)
    corner = np.median(np.stack([arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]]), axis=0)
    flat = np.abs(arr - corner).max(axis=2) <= tolerance  # (h, w) pixel matches the border colour
    rows = flat.all(axis=1)
    cols = flat.all(axis=0)

    def run(line: np.ndarray, limit: int) -> int:
        n = 0
        while n < limit and line[n]:
            n += 1
        return n

    top, bottom = run(rows, int(h * max_fraction)), run(rows[::-1], int(h * max_fraction))
    left, right = run(cols, int(w * max_fraction)), run(cols[::-1], int(w * max_fraction))
    if max(top, bottom) < h * min_fraction and max(left, right) < w * min_fraction:
        return None
    out = rgb[top:h - bottom, left:w - right]
    if out.shape[0] < 8 or out.shape[1] < 8:
        return None
    return np.ascontiguousarray(out)


__all__ = ["CROP_GRID", "CropWindow", "crop", "crop_variant_hashes", "trim_border"]
