"""Random phantom styles without MONAI: drawn ranges, held-out family, placement, masks and tilt.

Everything here is numpy and scipy: the draws (``phantom.style``), the plans (``styled.plan_styled``)
and the noise-free painting with exact masks (``styled.paint_plan``). The MONAI artefacts and the
command are tested in ``test_phantom_styled.py``.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from sct_lesion_classify.phantom import DIAGNOSES, generate_subject
from sct_lesion_classify.phantom import style as style_mod
from sct_lesion_classify.phantom.cohort import sample_subject_params
from sct_lesion_classify.phantom.geometry import STORAGE_ORIENTATIONS
from sct_lesion_classify.phantom.measure import cord_axis_angles
from sct_lesion_classify.phantom.style import (
    HELD_OUT, RANDOMISED, SHIFTED, AcquisitionDraw, PostureDraw, draw_style, held_out_hits,
    uniform_outside,
)
from sct_lesion_classify.phantom.styled import paint_plan, plan_styled, style_rng


@pytest.fixture(scope="module")
def randomised_draws():
    return [draw_style(style_rng(seed, "randomised"), "randomised") for seed in range(3000)]


@pytest.fixture(scope="module")
def shifted_draws():
    return [draw_style(style_rng(seed, "shifted"), "shifted") for seed in range(600)]


def test_randomised_draws_stay_within_their_stated_ranges(randomised_draws):
    for params in randomised_draws:
        assert RANDOMISED.violations(params) == [], params


def test_randomised_draws_cover_their_ranges(randomised_draws):
    """The ranges are used, not only respected: extremes, 3D, crops, every contrast family."""
    def values(get):
        return np.array([get(p) for p in randomised_draws], dtype=float)

    pitch = values(lambda p: p.posture.pitch_deg)
    assert pitch.min() < -33 and pitch.max() > 33
    roll = np.abs(values(lambda p: p.posture.roll_deg))
    assert roll.min() < 1 and roll.max() > 23 and np.mean(roll > HELD_OUT.roll_abs_deg[1]) > 0.4
    pixel = values(lambda p: p.acquisition.pixel_mm)
    assert pixel.min() < 0.35 and pixel.max() > 1.15
    thickness = values(lambda p: p.acquisition.slice_thickness_mm)
    assert thickness.min() < 0.85 and thickness.max() > 3.9
    isotropic = values(lambda p: p.acquisition.isotropic)
    cropped = values(lambda p: p.acquisition.cropped)
    assert 0.25 < isotropic.mean() < 0.35 and 0.1 < cropped.mean() < 0.2
    assert values(lambda p: p.acquisition.fov_si_mm).min() < 20  # as small as the shared real scan
    modes = {p.contrast.mode for p in randomised_draws}
    assert modes == {"independent", "t2_like", "fat_suppressed", "low_contrast"}
    cord = values(lambda p: p.contrast.t2_of("cord"))
    for tissue in ("fat", "muscle", "csf"):
        brighter = values(lambda p, t=tissue: p.contrast.t2_of(t)) > cord
        assert 0.2 < brighter.mean() < 0.95, tissue   # brighter than the cord, and darker
    csf_to_cord = values(lambda p: p.contrast.csf_to_cord)
    assert np.mean(np.abs(np.log(csf_to_cord)) < np.log(1.3)) > 0.1   # low cord/CSF contrast
    assert np.mean(csf_to_cord < HELD_OUT.csf_to_cord[0]) > 0.05      # CSF darker than the cord
    fat_suppressed = [p for p in randomised_draws if p.contrast.mode == "fat_suppressed"]
    assert all(p.contrast.t2_of("fat") < 0.4 * 720 * np.exp(3 * 0.25) for p in fat_suppressed)
    noise = {p.artefacts.noise_type for p in randomised_draws}
    assert noise == {"rician", "gaussian"}
    assert 0.2 < np.mean(values(lambda p: p.artefacts.gibbs_alpha) > 0) < 0.4
    assert 0.05 < np.mean(values(lambda p: p.artefacts.spike_amplitude) > 0) < 0.15
    assert 0.2 < np.mean([p.lookalikes.compression_fraction is not None for p in randomised_draws]) < 0.4


def test_randomised_never_draws_the_held_out_family(randomised_draws):
    assert RANDOMISED.exclude is HELD_OUT
    for params in randomised_draws:
        assert held_out_hits(params) == [], params
    # values come close to the holes from both sides: the holes are exactly the stated intervals
    thickness = np.array([p.acquisition.slice_spacing_mm for p in randomised_draws
                          if not p.acquisition.isotropic])
    below = thickness[thickness < HELD_OUT.slice_thickness_mm[0]]
    above = thickness[thickness > HELD_OUT.slice_thickness_mm[1]]
    assert HELD_OUT.slice_thickness_mm[0] - below.max() < 0.05
    assert above.min() - HELD_OUT.slice_thickness_mm[1] < 0.05


def test_shifted_draws_lie_in_the_held_out_family(shifted_draws):
    assert SHIFTED.acquisition.slice_thickness_mm == HELD_OUT.slice_thickness_mm
    assert SHIFTED.posture.roll_abs_deg == HELD_OUT.roll_abs_deg
    assert SHIFTED.contrast.csf_dark_csf_to_cord == HELD_OUT.csf_to_cord
    for params in shifted_draws:
        assert SHIFTED.violations(params) == [], params
        hits = held_out_hits(params)
        assert len(hits) == 4, hits   # thickness, spacing, coronal tilt, CSF/cord: all held out
        assert not params.acquisition.isotropic and params.contrast.mode == "csf_dark"


def test_violations_name_what_is_out_of_range(randomised_draws):
    params = randomised_draws[0]
    tilted = dataclasses.replace(params, posture=dataclasses.replace(params.posture, pitch_deg=40.0))
    assert any("pitch" in v for v in RANDOMISED.violations(tilted))
    held = dataclasses.replace(params, posture=dataclasses.replace(params.posture, roll_deg=-10.0))
    assert any("held out" in v for v in RANDOMISED.violations(held))
    assert SHIFTED.violations(params) != []


def test_uniform_outside_never_falls_in_the_hole():
    rng = np.random.default_rng(0)
    values = np.array([uniform_outside(rng, (0.0, 10.0), (2.0, 6.0)) for _ in range(4000)])
    assert not ((values >= 2.0) & (values <= 6.0)).any()
    assert values.min() >= 0 and values.max() <= 10
    assert abs(np.mean(values < 2.0) - 2 / 6) < 0.04   # uniform over what is left
    assert uniform_outside(rng, (0.0, 1.0), (2.0, 3.0)) < 1.0
    with pytest.raises(ValueError):
        uniform_outside(rng, (2.5, 3.0), (2.0, 6.0))


def test_draw_style_refuses_realistic():
    with pytest.raises(ValueError, match="no random parameters"):
        draw_style(np.random.default_rng(0), "realistic")


# ----------------------------------------------------------------------------------------------
# plans: the field of view and the patient


@pytest.mark.parametrize("style", ["randomised", "shifted"])
def test_plans_realise_the_drawn_voxel_size_within_the_budget(style):
    ranges = style_mod.RANGES[style]
    in_view = []
    for k in range(160):
        plan = plan_styled(500 + k, DIAGNOSES[k % 4], style)
        geometry, acquisition = plan.framed.geometry, plan.draw.acquisition
        assert geometry.zooms_mm == (acquisition.slice_spacing_mm, acquisition.pixel_mm, acquisition.pixel_mm)
        assert geometry.slice_thickness_mm == acquisition.slice_thickness_mm
        assert int(np.prod(geometry.shape)) <= ranges.acquisition.max_voxels
        assert min(geometry.shape) >= 3 and min(geometry.shape[1:]) >= 8
        assert geometry.storage_axcodes in STORAGE_ORIENTATIONS
        if not acquisition.cropped:
            in_view.append(plan.framed.lesion_in_view)
            # enlarged for the lesion, never smaller than drawn unless the budget says so
            if np.prod(geometry.shape) < ranges.acquisition.max_voxels * 0.9:
                assert geometry.fov_si_mm >= acquisition.fov_si_mm - 1e-6
                assert geometry.fov_ap_mm >= acquisition.fov_ap_mm - 1e-6
    assert np.mean(in_view) > 0.95


def test_given_shape_is_kept():
    plan = plan_styled(3, "MS", "randomised", shape=(9, 64, 96))
    assert plan.framed.geometry.shape == (9, 64, 96)


def test_same_patient_in_every_style():
    """A style changes appearance and geometry only: the class-conditional draws are the realistic ones."""
    for seed in range(8):
        diagnosis = DIAGNOSES[seed % 4]
        realistic = sample_subject_params(np.random.default_rng(seed), diagnosis)
        for style in ("randomised", "shifted"):
            assert plan_styled(seed, diagnosis, style).cohort == realistic
        subject = generate_subject(seed, diagnosis, shape=(5, 48, 96))
        assert (subject.age, subject.sex, subject.style, subject.style_params) == (
            realistic.age, realistic.sex, "realistic", None)


def test_bad_style_arguments():
    with pytest.raises(ValueError, match="unknown style"):
        generate_subject(0, "MS", style="synthseg")
    params = draw_style(np.random.default_rng(0), "randomised")
    with pytest.raises(ValueError, match="random style"):
        generate_subject(0, "MS", style="realistic", style_params=params)


# ----------------------------------------------------------------------------------------------
# painted masks (noise-free, exact)


def _small(params: style_mod.StyleParams, **posture) -> style_mod.StyleParams:
    """``params`` on a 1 mm isotropic grid around the lesion (fast), with the given posture."""
    acquisition = AcquisitionDraw(1.0, 1.0, 1.0, True, False, 100.0, 80.0, 40.0)
    straight = PostureDraw(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 400.0, 0.0)
    return dataclasses.replace(params, acquisition=acquisition,
                               posture=dataclasses.replace(straight, **posture))


@pytest.mark.parametrize(("pitch", "roll", "diagnosis"), [
    (30.0, 0.0, "MS"), (-35.0, 5.0, "ependymoma"), (0.0, 25.0, "NMOSD"), (15.0, -10.0, "astrocytoma")])
def test_cord_tilt_measured_from_the_mask_is_the_drawn_one(pitch, roll, diagnosis):
    params = _small(draw_style(style_rng(1, "randomised"), "randomised"), pitch_deg=pitch, roll_deg=roll)
    plan = plan_styled(21, diagnosis, "randomised", params=params)
    painted, _, _ = paint_plan(plan)
    sagittal, coronal = cord_axis_angles(painted.cord_mask, plan.framed.geometry.zooms_mm)
    assert abs(sagittal - pitch) < 2.0 and abs(coronal - roll) < 2.0, (sagittal, coronal)


def test_random_plans_give_consistent_masks_that_follow_the_drawn_posture():
    for k in range(10):
        style = ("randomised", "shifted")[k % 2]
        params = draw_style(style_rng(300 + k, style), style)
        acquisition = dataclasses.replace(params.acquisition, pixel_mm=max(params.acquisition.pixel_mm, 0.8),
                                          fov_si_mm=min(params.acquisition.fov_si_mm, 160.0))
        plan = plan_styled(300 + k, DIAGNOSES[k % 4], style,
                           params=dataclasses.replace(params, acquisition=acquisition))
        painted, cord, _ = paint_plan(plan)
        geometry = plan.framed.geometry
        assert painted.cord_mask.shape == painted.lesion_mask.shape == painted.t2w.shape == geometry.shape
        assert not (painted.lesion_mask & ~painted.cord_mask).any()
        assert painted.cord_mask.any()
        if plan.framed.lesion_in_view:
            assert painted.lesion_mask.any()
        # the mask's tilt is the tilt of the drawn centreline over the rows where the mask is
        rows = np.flatnonzero(painted.cord_mask.any(axis=(0, 1)))
        if rows.size > 20:
            z = geometry.z_centers()[rows].astype(np.float64)
            expected = np.degrees(np.arctan(np.polyfit(z, plan.anatomy.center_y(z), 1)[0]))
            sagittal, _ = cord_axis_angles(painted.cord_mask, geometry.zooms_mm)
            assert abs(sagittal - expected) < 3.0, (k, sagittal, expected)


def test_compression_narrows_the_cord_away_from_the_lesion():
    params = draw_style(style_rng(4, "randomised"), "randomised")
    params = dataclasses.replace(_small(params), lookalikes=dataclasses.replace(
        params.lookalikes, compression_fraction=0.5))
    acquisition = dataclasses.replace(params.acquisition, fov_si_mm=300.0)
    plan = plan_styled(4, "MS", "randomised", params=dataclasses.replace(params, acquisition=acquisition))
    painted, cord, compression = paint_plan(plan)
    assert compression is not None
    top, bottom = plan.lesion_levels
    assert min(abs(compression.level - top), abs(compression.level - bottom)) >= 1.5
    level = plan.anatomy.level(plan.framed.geometry.z_centers().astype(np.float64))
    at = np.abs(level - compression.level) < 0.05
    assert np.all(cord.radius_y[at] < 0.6 * cord.native_radius_y[at])
    assert not (painted.lesion_mask & ~painted.cord_mask).any()


def test_lesion_statistics_are_those_of_the_realistic_style():
    """Same seed, same patient: the measured lesion of a randomised subject (whole in its field of
    view) matches the realistic one (paired over 200 subjects: volume ratio 1.00, extension +0.0)."""
    from sct_lesion_classify.phantom.measure import measure_lesions

    compared = 0
    for k in range(8):
        diagnosis = DIAGNOSES[k % 4]
        params = draw_style(style_rng(40 + k, "randomised"), "randomised")
        # the drawn posture, contrast and lookalikes on a 1 mm grid (fast)
        params = dataclasses.replace(params, acquisition=_small(params).acquisition)
        plan = plan_styled(40 + k, diagnosis, "randomised", params=params)
        if not plan.framed.lesion_in_view:
            continue
        geometry = plan.framed.geometry
        painted, cord, _ = paint_plan(plan)
        styled = measure_lesions(painted.lesion_mask, cord, geometry, plan.anatomy, plan.cohort.enhancing)
        realistic = generate_subject(40 + k, diagnosis, shape=(13, 96, 224)).lesion_stats
        assert 0.7 < styled.total_volume_ml / realistic.total_volume_ml < 1.4, (k, styled, realistic)
        assert abs(styled.extent_segments - realistic.extent_segments) < 0.5, (k, styled, realistic)
        assert styled.enhancing == realistic.enhancing
        compared += 1
    assert compared >= 6


# ----------------------------------------------------------------------------------------------
# the command and the dataset without MONAI


def test_random_style_without_monai_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    from sct_lesion_classify.cli import phantom

    monkeypatch.setitem(sys.modules, "monai", None)            # import monai -> ImportError
    monkeypatch.setitem(sys.modules, "monai.transforms", None)
    out = tmp_path / "ds"
    assert phantom.main(["-o", str(out), "-n", "1", "--style", "randomised", "--shape", "64x96x5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs MONAI and PyTorch" in err
    assert not out.exists()                                     # nothing written
    assert phantom.main(["-o", str(out), "-n", "1", "--shape", "64x96x5", "-v", "0"]) == 0  # realistic


def test_realistic_dataset_appends_the_style_column(tmp_path):
    from sct_lesion_classify.io import bids
    from sct_lesion_classify.phantom.dataset import write_dataset

    write_dataset(tmp_path / "ds", 2, seed=1, shape=(5, 48, 96))
    lines = (tmp_path / "ds" / "participants.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(bids.PARTICIPANT_COLUMNS) + ["style"]
    assert [line.split("\t")[-1] for line in lines[1:]] == ["realistic", "realistic"]


def test_command_lists_the_package_styles():
    from sct_lesion_classify.cli import phantom

    assert phantom.STYLES == style_mod.STYLES


def test_realistic_style_needs_neither_torch_nor_monai(tmp_path):
    """SCT's inference environment has no torch: the package and the realistic style must not import it."""
    import os
    import subprocess
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = ("import sys\n"
            "from sct_lesion_classify.phantom import generate_subject, write_dataset\n"
            "from sct_lesion_classify.phantom import style, styled, framing, lookalikes, appearance\n"
            f"write_dataset({str(tmp_path / 'ds')!r}, 1, seed=0, shape=(3, 32, 64))\n"
            "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_style_params_must_match_the_style():
    params = draw_style(style_rng(0, "shifted"), "shifted")
    with pytest.raises(ValueError, match="drawn for 'shifted'"):
        plan_styled(0, "MS", "randomised", params=params)
