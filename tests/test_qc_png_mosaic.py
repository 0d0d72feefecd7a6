"""PNG encoding and sagittal mosaics: orientation, aspect ratio, overlays, slice choice."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from sct_lesion_classify.qc.mosaic import (
    CORD_BOX_RGB,
    sagittal_mosaic,
    select_slices,
)
from sct_lesion_classify.qc.png import encode_png, write_png


def decode_png(payload: bytes) -> np.ndarray:
    """Stdlib PNG decoder (8-bit gray/RGB, filter 0, as qc.png writes), independent of qc."""
    assert payload[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(payload):
        (length,) = struct.unpack(">I", payload[pos:pos + 4])
        kind = payload[pos + 4:pos + 8]
        data = payload[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", payload[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, data))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and interlace == 0
    channels = {0: 1, 2: 3}[color_type]
    raw = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * channels)
    assert np.all(rows[:, 0] == 0), "unexpected filter type"
    pixels = rows[:, 1:].reshape(height, width, channels)
    return pixels[..., 0] if channels == 1 else pixels


def test_png_round_trip_gray_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(7, 13), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(5, 9, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(gray)), gray)
    write_png(tmp_path / "x.png", rgb)
    assert np.array_equal(decode_png((tmp_path / "x.png").read_bytes()), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]   # no temporary file left


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((0, 4), np.uint8)])
def test_png_refuses_bad_arrays(bad):
    with pytest.raises(ValueError):
        encode_png(bad)


def _single_tile(image, zooms, **kwargs):
    mosaic = sagittal_mosaic(image, zooms, slices=[0], label_slices=False, **kwargs)
    gap = 4
    h, w = mosaic.tile_shape
    return mosaic, mosaic.rgb[gap:gap + h, gap:gap + w]


def test_superior_anterior_corner_is_top_left():
    # canonical: axis1 posterior->anterior, axis2 inferior->superior
    image = np.zeros((1, 40, 60), np.float32)
    image[0, -4:, -4:] = 100.0          # most anterior and most superior voxels
    image[0, :4, :4] = 50.0             # most posterior and most inferior voxels (dimmer)
    _, tile = _single_tile(image, (1.0, 1.0, 1.0), window=(0.0, 100.0))
    h, w = tile.shape[:2]
    assert tile[:h // 20, :w // 20].mean() > 240          # top-left: bright marker
    assert 100 < tile[-h // 20:, -w // 20:].mean() < 150   # bottom-right: dim marker
    assert tile[:h // 20, -w // 20:].max() == 0            # top-right: empty
    assert tile[-h // 20:, :w // 20].max() == 0            # bottom-left: empty


def test_aspect_ratio_follows_millimetres():
    # 50 voxels of 2 mm A-P (100 mm) by 100 voxels of 0.5 mm S-I (50 mm): wide, not tall.
    image = np.zeros((1, 50, 100), np.float32)
    mosaic, tile = _single_tile(image, (1.0, 2.0, 0.5))
    h, w = mosaic.tile_shape
    assert w / h == pytest.approx(2.0, rel=0.02)
    assert mosaic.pixel_mm * w == pytest.approx(100.0, rel=0.02)
    # A lesion 10 voxels A-P (20 mm) x 40 voxels S-I (20 mm) is displayed square.
    image = np.zeros((1, 50, 100), np.float32)
    lesion = np.zeros(image.shape, bool)
    lesion[0, 20:30, 30:70] = True
    _, tile = _single_tile(image, (1.0, 2.0, 0.5), lesion=lesion)
    red = (tile[..., 0] > 100) & (tile[..., 1] < 60)
    rows, cols = np.nonzero(red)
    assert (cols.max() - cols.min() + 1) == pytest.approx(rows.max() - rows.min() + 1, abs=2)


def test_overlays_have_their_colours():
    image = np.full((3, 40, 40), 10.0, np.float32)
    box = ((0, 3), (10, 30), (5, 35))
    saliency = np.zeros(image.shape, np.float32)
    saliency[:, 15:25, 15:25] = 1.0
    _, tile = _single_tile(image, (1, 1, 1), cord_box=box, saliency=saliency)
    green = np.all(tile == np.asarray(CORD_BOX_RGB, np.uint8), axis=-1)
    assert green.any()
    gray = (tile[..., 0] == tile[..., 1]) & (tile[..., 1] == tile[..., 2])
    assert (~gray & ~green).sum() > 50                       # the heat map is coloured


def test_select_slices_prefers_lesion_and_caps():
    lesion = np.zeros((30, 4, 4), bool)
    lesion[[3, 20, 21]] = True
    chosen = select_slices(30, lesion=lesion, cord_box=((10, 28), (0, 4), (0, 4)), max_slices=6,
                           shape=(30, 4, 4))
    assert len(chosen) == 6 and {3, 20, 21} <= set(chosen) and list(chosen) == sorted(chosen)
    assert select_slices(30, max_slices=5) == (13, 14, 15, 16, 17)
    many = np.ones((40, 2, 2), bool)
    assert len(select_slices(40, lesion=many, max_slices=12)) == 12


def test_mosaic_grid_and_labels():
    image = np.random.default_rng(0).random((10, 20, 30)).astype(np.float32)
    mosaic = sagittal_mosaic(image, (1, 1, 1), slices=range(8), columns=6)
    assert mosaic.columns == 4 and mosaic.slices == tuple(range(8))
    h, w = mosaic.tile_shape
    assert mosaic.rgb.shape == (2 * h + 3 * 4, 4 * w + 5 * 4, 3)
    assert mosaic.rgb.dtype == np.uint8
    with pytest.raises(ValueError):
        sagittal_mosaic(image, (1, 1, 1), lesion=np.zeros((2, 2, 2), bool))
