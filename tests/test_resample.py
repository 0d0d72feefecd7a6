"""Sagittal in-plane resampling: geometry, identity, round trips, padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io.resample import SliceResampler


def _centres_mm(n: int, spacing: float, start: float = 0.0) -> np.ndarray:
    return start + (np.arange(n) + 0.5) * spacing


def _ellipse_stack(shape, spacing, n_slices=3, radii_mm=(6.0, 15.0)):
    a_mm = _centres_mm(shape[0], spacing[0])[:, None]
    s_mm = _centres_mm(shape[1], spacing[1])[None, :]
    centre = (shape[0] * spacing[0] / 2, shape[1] * spacing[1] / 2)
    inside = ((a_mm - centre[0]) / radii_mm[0]) ** 2 + ((s_mm - centre[1]) / radii_mm[1]) ** 2 <= 1
    return np.repeat(inside[None], n_slices, axis=0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("order", [0, 1, 3])
def test_identity_when_spacings_match(order):
    slices = np.random.default_rng(0).random((4, 33, 47)).astype(np.float32)
    resampler = SliceResampler.to_spacing((33, 47), (0.5, 0.7), (0.5, 0.7))
    assert resampler.out_shape == (33, 47) and resampler.padding == ((0, 0), (0, 0))
    np.testing.assert_array_equal(resampler.forward(slices, order=order), slices)
    np.testing.assert_array_equal(resampler.backward(slices, order=order), slices)


def test_divisible_padding_is_added_and_removed_exactly():
    slices = np.random.default_rng(1).random((2, 33, 47)).astype(np.float32) + 1.0
    resampler = SliceResampler.to_spacing((33, 47), (0.5, 0.7), (0.5, 0.7), divisible_by=16)
    assert resampler.out_shape == (48, 48)
    assert resampler.padding == ((7, 8), (0, 1))
    forward = resampler.forward(slices, cval=-3.0)
    assert forward.shape == (2, 48, 48)
    valid_a, valid_s = resampler.valid
    # the image sits, unchanged, inside the padding
    np.testing.assert_array_equal(forward[:, valid_a, valid_s], slices)
    assert (forward[:, :7] == -3).all() and (forward[:, 40:] == -3).all() and (forward[:, :, 47] == -3).all()
    np.testing.assert_array_equal(resampler.backward(forward), slices)


@settings(max_examples=40, deadline=None)
@given(
    in_shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    in_spacing=st.tuples(st.floats(0.2, 4.0), st.floats(0.2, 4.0)),
    out_spacing=st.tuples(st.floats(0.2, 4.0), st.floats(0.2, 4.0)),
    divisible_by=st.sampled_from([1, 2, 8, 16, 32]),
    n_slices=st.integers(0, 3),
)
def test_shapes_are_exact(in_shape, in_spacing, out_spacing, divisible_by, n_slices):
    resampler = SliceResampler.to_spacing(in_shape, in_spacing, out_spacing, divisible_by)
    assert all(n % divisible_by == 0 for n in resampler.out_shape)
    slices = np.ones((n_slices, *in_shape), dtype=np.float32)
    forward = resampler.forward(slices)
    assert forward.shape == (n_slices, *resampler.out_shape) and forward.dtype == np.float32
    backward = resampler.backward(forward)
    assert backward.shape == (n_slices, *in_shape) and backward.dtype == np.float32
    # a constant image stays constant inside the field of view and comes back unchanged
    valid_a, valid_s = resampler.valid
    np.testing.assert_allclose(forward[:, valid_a, valid_s], 1.0, atol=1e-6)
    np.testing.assert_allclose(backward, 1.0, atol=1e-6)
    assert sum(resampler.padding[0]) < divisible_by and sum(resampler.padding[1]) < divisible_by


def test_pixel_centres_are_aligned_in_mm():
    """A linear ramp in mm is reproduced exactly by linear interpolation (away from the edges)."""
    in_shape, in_spacing = (40, 60), (0.8, 1.1)
    a_mm = _centres_mm(in_shape[0], in_spacing[0])[:, None]
    s_mm = _centres_mm(in_shape[1], in_spacing[1])[None, :]
    ramp = (2.0 * a_mm - 0.5 * s_mm)[None].astype(np.float32)
    resampler = SliceResampler.to_spacing(in_shape, in_spacing, (0.5, 0.5), divisible_by=8)
    forward = resampler.forward(ramp)
    out_a = _centres_mm(resampler.out_shape[0], 0.5, resampler.out_start_mm[0])
    out_s = _centres_mm(resampler.out_shape[1], 0.5, resampler.out_start_mm[1])
    interior_a = (out_a >= a_mm.min()) & (out_a <= a_mm.max())
    interior_s = (out_s >= s_mm.min()) & (out_s <= s_mm.max())
    expected = 2.0 * out_a[:, None] - 0.5 * out_s[None, :]
    np.testing.assert_allclose(
        forward[0][np.ix_(interior_a, interior_s)], expected[np.ix_(interior_a, interior_s)], atol=1e-4
    )


def test_smooth_image_round_trip_is_close():
    in_shape, in_spacing = (64, 200), (0.45, 0.45)
    a_mm = _centres_mm(in_shape[0], in_spacing[0])[:, None]
    s_mm = _centres_mm(in_shape[1], in_spacing[1])[None, :]
    image = np.exp(-((a_mm - 14) ** 2) / 40.0 - ((s_mm - 45) ** 2) / 300.0) + 0.3 * np.cos(s_mm / 9.0)
    slices = np.stack([image, 2 * image]).astype(np.float32)
    for resampler in (
        SliceResampler.to_spacing(in_shape, in_spacing, (0.6, 0.6), divisible_by=16),
        SliceResampler.to_size(in_shape, in_spacing, (256, 256)),
    ):
        back = resampler.backward(resampler.forward(slices, order=1), order=1)
        assert back.shape == slices.shape
        error = np.abs(back - slices).max() / np.ptp(slices)
        assert error < 0.02, (resampler, error)


@pytest.mark.parametrize("out_spacing", [(0.3, 0.3), (0.5, 0.5), (0.8, 1.0)])
def test_binary_mask_round_trip_keeps_dice(out_spacing):
    in_shape, in_spacing = (56, 160), (0.45, 0.6)
    mask = _ellipse_stack(in_shape, in_spacing)
    resampler = SliceResampler.to_spacing(in_shape, in_spacing, out_spacing, divisible_by=32)
    nearest = resampler.backward(resampler.forward(mask, order=0), order=0) > 0.5
    linear = resampler.backward(resampler.forward(mask, order=1), order=1) >= 0.5
    assert _dice(nearest, mask) > 0.95
    assert _dice(linear, mask) > 0.95
    # forward alone keeps the area in mm2
    forward = resampler.forward(mask, order=1) >= 0.5
    area_in = mask[0].sum() * np.prod(in_spacing)
    area_out = forward[0].sum() * np.prod(out_spacing)
    assert abs(area_out - area_in) / area_in < 0.05


def test_to_size_keeps_aspect_with_centred_padding():
    in_shape, in_spacing = (80, 320), (0.5, 0.5)  # 40 x 160 mm
    resampler = SliceResampler.to_size(in_shape, in_spacing, 256)
    assert resampler.out_shape == (256, 256)
    assert resampler.out_spacing_mm == (0.625, 0.625)
    (before_a, after_a), (before_s, after_s) = resampler.padding
    assert (before_s, after_s) == (0, 0)
    assert before_a + after_a == 256 - 64 and abs(before_a - after_a) <= 1
    slices = np.full((1, *in_shape), 5.0, dtype=np.float32)
    forward = resampler.forward(slices, cval=0.0)
    assert forward[0, before_a:256 - after_a].min() == 5.0
    assert forward[0, :before_a].max() == 0.0 and forward[0, 256 - after_a:].max() == 0.0
    # padding never leaks back: the constant comes back unchanged up to the edges
    np.testing.assert_allclose(resampler.backward(forward), 5.0, atol=1e-6)


def test_to_size_without_aspect_stretches_each_axis():
    resampler = SliceResampler.to_size((80, 320), (0.5, 0.5), (256, 256), keep_aspect=False)
    assert resampler.padding == ((0, 0), (0, 0))
    np.testing.assert_allclose(resampler.out_spacing_mm, (40 / 256, 160 / 256))
    mask = _ellipse_stack((80, 320), (0.5, 0.5), n_slices=1)
    back = resampler.backward(resampler.forward(mask), order=1) >= 0.5
    assert _dice(back, mask) > 0.95


def test_wrong_shapes_are_refused():
    resampler = SliceResampler.to_spacing((10, 12), (1.0, 1.0), (0.5, 0.5))
    with pytest.raises(ProcessingError, match="shape"):
        resampler.forward(np.zeros((2, 12, 10)))
    with pytest.raises(ProcessingError, match="stack"):
        resampler.forward(np.zeros((10, 12)))
    with pytest.raises(ProcessingError):
        resampler.backward(np.zeros((2, 10, 12)))
    with pytest.raises(ValueError):
        SliceResampler.to_spacing((10, 12), (1.0, 0.0), (0.5, 0.5))
    with pytest.raises(ValueError):
        SliceResampler.to_spacing((10, 12), (1.0, 1.0), (0.5, 0.5), divisible_by=0)


@pytest.mark.parametrize("order", [0, 1, 3])
def test_threads_do_not_change_the_result(order):
    rng = np.random.default_rng(11)
    slices = rng.normal(size=(7, 61, 83)).astype(np.float32)
    resampler = SliceResampler.to_spacing((61, 83), (0.45, 0.8), (0.6, 0.6), divisible_by=16)
    forward = resampler.forward(slices, order=order, cval=-3.0)
    for threads in (2, 3, 16):
        threaded = resampler.forward(slices, order=order, cval=-3.0, threads=threads)
        assert threaded.tobytes() == forward.tobytes()
        assert resampler.backward(forward, order=order, threads=threads).tobytes() == \
            resampler.backward(forward, order=order).tobytes()
