"""Synthetic lesions painted inside the cord label while training the localizer (``train --paint-lesions``).

The painting must stay inside the cord, leave the label as it is, follow the cord's direction,
set the signal from the slice's own cord, keep the noise level, follow the sample's seed, and
leave a recipe without it exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.train.family import card_skeleton
from sct_lesion_classify.train.lesion_paint import RandCordLesionPaintd, cord_direction, cord_noise_sigma
from sct_lesion_classify.train.recipes import RECIPES


def oblique_cord(noise: float = 0.0, seed: int = 0, half_width: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A (1, 96, 96) slice: dark background (100), bright CSF (800) around a cord (300) that runs
    at 45 degrees, ``2 * half_width`` pixels wide; and the cord's (1, 96, 96) label."""
    rows, cols = np.mgrid[:96, :96]
    distance = np.abs(rows - cols) / np.sqrt(2.0)      # from the line rows == cols
    image = np.full((96, 96), 100.0)
    image[distance <= half_width + 4] = 800.0
    cord = distance <= half_width
    image[cord] = 300.0
    image += noise * np.random.default_rng(seed).standard_normal(image.shape)
    return image[None].astype(np.float32), cord[None].astype(np.float32)


def painter(**kw) -> RandCordLesionPaintd:
    return RandCordLesionPaintd(("image",), "label", prob=1.0, **kw)


def test_painting_stays_inside_the_cord_and_keeps_the_label():
    image, cord = oblique_cord(noise=5.0)
    changed = 0
    for seed in range(20):
        out = painter().set_random_state(seed)({"image": image, "label": cord})
        assert out["image"].dtype == np.float32 and out["image"].shape == image.shape
        np.testing.assert_array_equal(out["label"], cord)
        outside = cord[0] < 0.5
        np.testing.assert_array_equal(out["image"][0][outside], image[0][outside])
        changed += int(np.abs(out["image"][0] - image[0]).max() > 50)
    assert changed >= 18, "most draws should paint a visible lesion"


def test_signal_is_set_from_the_cord_and_a_lesion_runs_along_the_cord():
    image, cord = oblique_cord()
    paint = painter(count=(1, 1), hyper_ratio=(2.0, 2.0), texture=(0.0, 0.0),
                    half_length_px=(20.0, 20.0), half_width_px=(2.0, 2.0))
    import sct_lesion_classify.train.lesion_paint as module

    hyper = []
    for seed in range(30):
        out = paint.set_random_state(seed)({"image": image, "label": cord})["image"][0]
        core = np.abs(out - image[0]) > 1.0
        if not core.any():
            continue
        if np.median(out[core]) > 300:   # hyperintense (a share HYPO_SHARE of them are hypointense)
            dark = float(np.percentile(image, 1.0))
            # the cord's inside, fully painted: the target signal, give or take the noise given back
            # for the cord's edge (8 pixels wide: the 1-pixel smoothing reaches its middle)
            strongest = np.sort(out[core])[-max(3, core.sum() // 3):]
            assert float(np.median(strongest)) == pytest.approx(dark + 2.0 * (300.0 - dark), rel=0.03)
            hyper.append(core)
        # the painted pixels spread along the cord (the diagonal), not across it
        rows, cols = np.nonzero(core)
        if rows.size > 10:
            along = np.ptp(rows + cols) / np.sqrt(2.0)
            across = np.ptp(rows - cols) / np.sqrt(2.0)
            assert along > 2 * across
    assert len(hyper) >= 20
    assert 0.0 < module.HYPO_SHARE < 0.5


def test_cord_direction_and_noise_level():
    _, cord = oblique_cord()
    direction = cord_direction(cord[0] > 0.5, np.array([48.0, 48.0]))
    assert abs(abs(direction @ np.array([1.0, 1.0]) / np.sqrt(2.0)) - 1.0) < 1e-3
    noisy, wide = oblique_cord(noise=20.0, half_width=10.0)
    assert cord_noise_sigma(noisy[0], wide[0] > 0.5) == pytest.approx(20.0, rel=0.1)


def test_painted_pixels_keep_the_image_noise_level():
    image, cord = oblique_cord(noise=20.0, seed=1, half_width=10.0)
    paint = painter(count=(1, 1), hyper_ratio=(2.0, 2.0), texture=(0.0, 0.0),
                    half_length_px=(40.0, 40.0), half_width_px=(12.0, 12.0))
    from scipy import ndimage

    inside = ndimage.distance_transform_edt(cord[0] > 0.5) > 3   # fully painted, away from the edge
    for seed in range(10):
        out = paint.set_random_state(seed)({"image": image, "label": cord})["image"][0]
        core = inside & (np.abs(out - image[0]) > 150.0)
        if core.sum() > 100:
            break
    else:
        pytest.fail("no large hyperintense lesion painted in 10 draws")
    # a flat target there, with a smooth ramp at the lesion's ends: the high-pass spread is the
    # noise given back, at the image's level (20); without it, it would be near 0
    assert cord_noise_sigma(out, core) == pytest.approx(20.0, rel=0.2)


def test_seeding_probability_and_small_cords():
    image, cord = oblique_cord(noise=5.0)
    first = painter().set_random_state(4)({"image": image, "label": cord})["image"]
    again = painter().set_random_state(4)({"image": image, "label": cord})["image"]
    other = painter().set_random_state(5)({"image": image, "label": cord})["image"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    data = {"image": image, "label": cord}
    assert RandCordLesionPaintd(("image",), "label", prob=0.0)(data) is data
    half = RandCordLesionPaintd(("image",), "label", prob=0.5)
    painted = sum(half.set_random_state(seed)(data) is not data for seed in range(200))
    assert 70 < painted < 130
    tiny = np.zeros_like(cord)
    tiny[0, 10, 10:15] = 1.0
    assert painter()({"image": image, "label": tiny})["image"] is image
    with pytest.raises(ValueError):
        RandCordLesionPaintd(("image",), "label", prob=2.0)


def test_augmenter_streams_stay_apart():
    """Painting draws from its own stream: a sample with nothing to paint comes out of an
    augmenter that paints exactly as out of one that does not, every other transform switched on."""
    pytest.importorskip("monai")
    from sct_lesion_classify.train.augment import AugmentConfig, Augmenter

    image, _ = oblique_cord(noise=5.0)
    no_cord = np.zeros_like(image)
    everything = dict(affine_prob=1.0, elastic_prob=1.0, flip_prob=0.5, intensity_prob=1.0, curve_prob=0.5)
    with_paint = Augmenter(AugmentConfig(paint_prob=1.0, **everything))
    without = Augmenter(AugmentConfig(**everything))
    for seed in range(5):
        np.testing.assert_array_equal(with_paint(image, no_cord, seed)[0], without(image, no_cord, seed)[0])
    _, cord = oblique_cord()
    spatial_off = dict(affine_prob=0.0, elastic_prob=0.0, flip_prob=0.0, intensity_prob=0.0)
    out, label = Augmenter(AugmentConfig(paint_prob=1.0, **spatial_off))(image, cord, seed=3)
    np.testing.assert_array_equal(label, cord)
    assert not np.array_equal(out, image)


def test_only_the_cord_localizer_takes_the_option_and_its_card_records_it():
    recipe = RECIPES["cord"]
    assert recipe.augment.paint_prob == 0.0
    assert recipe.with_painted_lesions(None) is recipe
    painted = recipe.with_painted_lesions(0.5)
    assert painted.augment.paint_prob == 0.5
    assert card_skeleton(painted, "1.0.0").architecture.details["painted_lesion_prob"] == 0.5
    with pytest.raises(InputError, match="paint-lesions"):
        recipe.with_painted_lesions(1.5)
    for family in sorted(set(RECIPES) - {"cord"}):
        assert RECIPES[family].with_painted_lesions(None) is RECIPES[family]
        with pytest.raises(InputError, match="paint-lesions applies to the cord localizer"):
            RECIPES[family].with_painted_lesions(0.5)


def test_command_refuses_the_option_for_another_family(capsys, tmp_path):
    from sct_lesion_classify.cli.train import main as train_main

    testing_data = Path(__file__).resolve().parents[1] / "testing_data"
    for family in ("lesion", "ms_vs_nmosd"):
        assert train_main([family, "--bids", str(testing_data), "-o", str(tmp_path / "m"),
                           "--paint-lesions", "0.5"]) == 2
        err = capsys.readouterr().err
        assert f"--paint-lesions applies to the cord localizer, not to {family}" in err
        assert err.count("\n") == 1
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_train_without_pytorch_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    """In SCT's environment (no PyTorch, no MONAI), 'train' ends with one line and exit 2, not an
    'unexpected failure'; the options are checked first."""
    import sys

    from sct_lesion_classify.cli.train import main as train_main

    for name in ("monai", "monai.transforms", "torch"):
        monkeypatch.setitem(sys.modules, name, None)   # 'import' of these now raises ImportError
    testing_data = Path(__file__).resolve().parents[1] / "testing_data"
    assert train_main(["cord", "--bids", str(testing_data), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "train needs MONAI and PyTorch (monai is not installed: pip install " \
           "'sct_lesion_classify[train]')" in err
    assert train_main(["lesion", "--bids", str(testing_data), "-o", str(tmp_path / "m"),
                       "--paint-lesions", "0.5"]) == 2
    assert "--paint-lesions applies to the cord localizer" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
