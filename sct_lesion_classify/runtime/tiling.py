"""Tiles that follow the spinal cord through the sagittal slices of the crop box.

The crop box is axis-aligned, so it holds much that is far from the cord: the slices at its
right and left margins, where the cord shows only over a few centimetres at the cervical
enlargement, and, in every slice, the space the cord's curve sweeps in the anterior-posterior
direction. :func:`plan_tiles` covers only the pixels that need a prediction (the cord grown by the
card's margins) with rectangles cut along the superior-inferior axis, each with its own
anterior-posterior extent, so the network's work follows the cord.

A model slice is ``(H, W)``: rows run anterior-posterior, columns superior-inferior. Each tile
runs the network on a *window* larger than what it keeps: ``context_px`` more columns above and
below its *core* (as far as the slice goes), so that every kept pixel sees at least that much of
the image in the superior-inferior direction. In the anterior-posterior direction the window is
the rows needed in the core's columns, which already hold the card's margin around the cord. Windows are grown to a multiple of the network's
``size_divisible_by`` inside the slice; the slices of a model grid are already such a multiple,
so no padding is ever added.

For each slice the number of tiles is the one that minimizes the pixels the network sees
(one tile, a rectangle over the whole needed extent, is always a candidate). The plan depends
only on the needed pixels, so it is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A rectangle of one model slice: the network runs on ``window``, the result keeps ``core``.

    Attributes
    ----------
    slice_index
        Index of the slice in the ``(N, H, W)`` stack.
    window
        ``(rows, columns)`` index slices of the network input (H: anterior-posterior, W:
        superior-inferior), each a multiple of the divisor in length.
    core
        ``(rows, columns)`` of the pixels whose prediction is kept; inside ``window``.
    """

    slice_index: int
    window: tuple[slice, slice]
    core: tuple[slice, slice]

    @property
    def window_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the network input."""
        return tuple(s.stop - s.start for s in self.window)  # type: ignore[return-value]

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        """:attr:`core` in the coordinates of the network output (``output[core_in_window]``)."""
        return tuple(slice(c.start - w.start, c.stop - w.start)
                     for c, w in zip(self.core, self.window))  # type: ignore[return-value]


def _rounded_up(length, divisor: int):
    """``length`` (an int or an integer array) rounded up to a multiple of ``divisor``."""
    return -(-length // divisor) * divisor


def _grown(start: int, stop: int, size: int, divisor: int) -> slice:
    """``[start, stop)`` grown about its centre to a multiple of ``divisor``, kept inside ``[0, size)``."""
    length = min(size, _rounded_up(stop - start, divisor))
    first = min(max(0, start - (length - (stop - start)) // 2), size - length)
    return slice(first, first + length)


def _slice_plan(needed: np.ndarray, context_px: int, divisor: int, min_core_px: int) -> list[tuple]:
    """The cheapest split of one slice's needed columns into cores.

    Returns ``(core_rows, core_cols, window_rows, window_cols)`` slices for each core.
    """
    height, width = needed.shape
    column_used = needed.any(axis=0)
    columns = np.flatnonzero(column_used)
    first_col, stop_col = int(columns[0]), int(columns[-1]) + 1
    # first and last needed row of each column (height and -1 where there is none)
    top = np.where(column_used, needed.argmax(axis=0), height)
    bottom = np.where(column_used, height - 1 - needed[::-1].argmax(axis=0), -1)

    def cores(n_tiles: int):
        edges = np.linspace(first_col, stop_col, n_tiles + 1).round().astype(int)
        starts, stops = edges[:-1], edges[1:]
        keep = stops > starts
        starts, stops = starts[keep], stops[keep]
        row_start = np.minimum.reduceat(top, starts)
        row_stop = np.maximum.reduceat(bottom, starts) + 1
        used = row_stop > row_start  # a core over a gap of the needed pixels needs no tile
        return starts[used], stops[used], row_start[used], row_stop[used]

    best_cost, best_n = None, 1
    for n_tiles in range(1, max(1, (stop_col - first_col) // max(1, min_core_px)) + 1):
        starts, stops, row_start, row_stop = cores(n_tiles)
        window = np.minimum(width, stops + context_px) - np.maximum(0, starts - context_px)
        cost = int((np.minimum(height, _rounded_up(row_stop - row_start, divisor))
                    * np.minimum(width, _rounded_up(window, divisor))).sum())
        if best_cost is None or cost < best_cost:
            best_cost, best_n = cost, n_tiles
    plan = []
    for core_start, core_stop, row_start, row_stop in zip(*cores(best_n)):
        core_start, core_stop, row_start, row_stop = map(int, (core_start, core_stop, row_start, row_stop))
        rows = _grown(row_start, row_stop, height, divisor)
        cols = _grown(max(0, core_start - context_px), min(width, core_stop + context_px), width, divisor)
        plan.append((slice(row_start, row_stop), slice(core_start, core_stop), rows, cols))
    return plan


def plan_tiles(needed: np.ndarray, *, context_px: int, divisor: int = 1,
               min_core_px: int = 16) -> list[Tile]:
    """Tiles covering every needed pixel of an ``(N, H, W)`` stack of model slices.

    Parameters
    ----------
    needed
        Boolean ``(N, H, W)``: the pixels that need a prediction.
    context_px
        Pixels of image kept above and below each core in the network's window (within the slice).
    divisor
        Window sizes are multiples of this (the network's ``size_divisible_by``); ``H`` and ``W``
        must be multiples too.
    min_core_px
        Shortest core considered, in columns (bounds the search).

    Returns
    -------
    list of Tile
        In slice order, then superior-inferior order; none for a slice that needs nothing.
        Cores do not overlap, and their union holds every needed pixel.
    """
    needed = np.asarray(needed, dtype=bool)
    if needed.ndim != 3:
        raise ValueError(f"needed must be (N, H, W), got shape {needed.shape}")
    if context_px < 0 or divisor < 1:
        raise ValueError(f"need context_px >= 0 and divisor >= 1, got {context_px} and {divisor}")
    if needed.shape[1] % divisor or needed.shape[2] % divisor:
        raise ValueError(f"slice size {needed.shape[1:]} is not a multiple of {divisor}")
    tiles = []
    for index in range(needed.shape[0]):
        if not needed[index].any():
            continue
        for core_rows, core_cols, rows, cols in _slice_plan(needed[index], context_px, divisor, min_core_px):
            tiles.append(Tile(slice_index=index, window=(rows, cols), core=(core_rows, core_cols)))
    return tiles
