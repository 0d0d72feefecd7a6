"""Minimal PNG encoder (8-bit grayscale, RGB or RGBA) with the standard library and numpy only.

The inference environment has no imaging library (no Pillow, no matplotlib), and the QC pictures
need nothing more than a non-interlaced 8-bit PNG: signature, ``IHDR``, one ``IDAT`` holding the
zlib-compressed scanlines (filter type 0 on every row) and ``IEND``, each chunk with its CRC-32.
RGBA (a transparent overlay for SCT's QC page, :mod:`.sct_records`) is written only when asked for
(``with_alpha=True``), so a stray 4-channel array is refused rather than written as transparency.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from sct_lesion_classify.io.atomic import write_bytes_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_COLOR_TYPE_GRAY = 0
_COLOR_TYPE_RGB = 2
_COLOR_TYPE_RGBA = 6


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def encode_png(array: np.ndarray, compression_level: int = 6, *, with_alpha: bool = False) -> bytes:
    """Encode an image as PNG bytes.

    Parameters
    ----------
    array
        ``(height, width)`` grayscale or ``(height, width, 3)`` RGB, dtype ``uint8``
        (row 0 is the top of the picture); with ``with_alpha``, ``(height, width, 4)`` RGBA
        (alpha 0: transparent, 255: opaque).
    compression_level
        zlib level, 0-9.
    with_alpha
        Encode an RGBA picture (and only that).

    Returns
    -------
    bytes
        A complete PNG file.

    Raises
    ------
    ValueError
        If the array is not 8-bit, has another shape, or is empty.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"PNG pictures must be uint8, got {array.dtype}")
    if with_alpha:
        if not (array.ndim == 3 and array.shape[2] == 4):
            raise ValueError(f"RGBA PNG pictures must be (H, W, 4), got shape {array.shape}")
        color_type = _COLOR_TYPE_RGBA
    elif array.ndim == 2:
        color_type = _COLOR_TYPE_GRAY
    elif array.ndim == 3 and array.shape[2] == 3:
        color_type = _COLOR_TYPE_RGB
    else:
        raise ValueError(f"PNG pictures must be (H, W) or (H, W, 3), got shape {array.shape}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"empty picture of shape {array.shape}")
    rows = np.ascontiguousarray(array).reshape(height, -1)
    # Each scanline starts with its filter-type byte (0 = None).
    scanlines = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"".join([
        PNG_SIGNATURE,
        _chunk(b"IHDR", header),
        _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), compression_level)),
        _chunk(b"IEND", b""),
    ])


def write_png(path: str | os.PathLike, array: np.ndarray, *, with_alpha: bool = False) -> None:
    """Write ``array`` (see :func:`encode_png`) to ``path`` atomically (temporary file + rename)."""
    write_bytes_atomic(path, encode_png(array, with_alpha=with_alpha))
