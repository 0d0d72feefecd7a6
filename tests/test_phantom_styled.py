"""Random phantom styles end to end (MONAI artefacts): determinism, stored images, command option."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("monai")

from sct_lesion_classify.cli import phantom  # noqa: E402
from sct_lesion_classify.io import bids  # noqa: E402
from sct_lesion_classify.io.image import load_image  # noqa: E402
from sct_lesion_classify.phantom import DIAGNOSES, generate_subject  # noqa: E402
from sct_lesion_classify.phantom.artefacts import apply_artefacts  # noqa: E402
from sct_lesion_classify.phantom.style import ArtefactDraw  # noqa: E402

SMALL = (6, 64, 96)  # canonical (RL, AP, SI)


@pytest.mark.parametrize("style", ["randomised", "shifted"])
def test_same_seed_same_subject(style):
    a = generate_subject(5, "MS", shape=SMALL, with_t1c=True, style=style)
    b = generate_subject(5, "MS", shape=SMALL, with_t1c=True, style=style)
    for name in ("t2w", "t1c", "cord_mask", "lesion_mask", "affine"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.style_params == b.style_params and a.lesion_stats == b.lesion_stats
    assert not np.array_equal(a.t2w, generate_subject(6, "MS", shape=SMALL, style=style).t2w)


def test_styles_draw_different_images_of_the_same_patient():
    subjects = {style: generate_subject(9, "NMOSD", shape=SMALL, style=style)
                for style in ("realistic", "randomised", "shifted")}
    assert len({(s.age, s.sex, s.diagnosis) for s in subjects.values()}) == 1
    assert {s.style for s in subjects.values()} == {"realistic", "randomised", "shifted"}
    assert not np.array_equal(subjects["randomised"].t2w, subjects["shifted"].t2w)


@pytest.mark.parametrize("seed", range(4))
def test_stored_images_and_exact_masks(seed):
    style = ("randomised", "shifted")[seed % 2]
    s = generate_subject(seed, DIAGNOSES[seed], shape=SMALL, with_t1c=True, style=style)
    acquisition = s.style_params.acquisition
    np.testing.assert_allclose(np.abs(np.diag(s.affine))[:3],
                               (acquisition.slice_spacing_mm, acquisition.pixel_mm, acquisition.pixel_mm))
    for image in (s.t2w, s.t1c):
        assert image.shape == SMALL and image.dtype == np.float32
        assert np.array_equal(image, np.rint(image)) and image.min() >= 0 and image.max() <= 32767
    assert s.cord_mask.dtype == bool and s.lesion_mask.shape == SMALL
    assert not (s.lesion_mask & ~s.cord_mask).any()
    assert abs(np.percentile(s.t2w, 99) / s.style_params.artefacts.output_p99 - 1) < 0.05


def _flat_draw(**changes) -> ArtefactDraw:
    base = ArtefactDraw(bias_coeff=0.0, noise_type="gaussian", noise_fraction=0.05,
                        blur_sigma_vox=(0.0, 0.0, 0.0), gibbs_alpha=0.0, spike_amplitude=0.0, gamma=1.0,
                        output_p99=1000.0, seed=3)
    return dataclasses.replace(base, **changes)


def test_artefacts_follow_their_draw():
    image = np.full((8, 64, 64), 500.0, dtype=np.float32)
    image[:, 20:44, 20:44] = 1000.0
    original = image.copy()
    plain = apply_artefacts(image, _flat_draw())
    np.testing.assert_array_equal(plain, apply_artefacts(image, _flat_draw()))   # seeded
    assert not np.array_equal(plain, apply_artefacts(image, _flat_draw(seed=4)))
    # noise: its SD over the flat region is the drawn fraction of the 99th percentile
    flat = plain[:, 50:, 50:]
    assert abs(flat.std() / np.percentile(plain, 99) - 0.05) < 0.012
    # bias field: a smooth large-scale variation of the flat region
    biased = apply_artefacts(image, _flat_draw(bias_coeff=0.5, noise_fraction=0.005))
    corners = [biased[:, :10, :10].mean(), biased[:, -10:, -10:].mean(), biased[:, :10, -10:].mean()]
    assert np.ptp(corners) / np.mean(corners) > 0.05
    # blur softens the edge; Gibbs rings next to it; a spike adds stripes everywhere
    quiet = _flat_draw(noise_fraction=0.001)
    sharp = apply_artefacts(image, quiet)
    edge = np.abs(np.diff(sharp[4, 32, 15:25])).max()
    blurred = apply_artefacts(image, dataclasses.replace(quiet, blur_sigma_vox=(0.0, 1.0, 1.0)))
    assert np.abs(np.diff(blurred[4, 32, 15:25])).max() < 0.8 * edge
    ringing = apply_artefacts(image, dataclasses.replace(quiet, gibbs_alpha=0.5))
    assert ringing[4, 32, 5:18].std() > 3 * sharp[4, 32, 5:18].std()
    spiked = apply_artefacts(image, dataclasses.replace(quiet, spike_amplitude=0.1))
    assert spiked[:, 50:, 50:].std() > 3 * sharp[:, 50:, 50:].std()
    np.testing.assert_array_equal(image, original)   # the input is never modified


def test_command_writes_a_styled_dataset(tmp_path):
    out = tmp_path / "shifted"
    assert phantom.main(["-o", str(out), "-n", "4", "--seed", "2", "--style", "shifted",
                         "--shape", "64x96x6", "--with-t1c", "-v", "0"]) == 0
    header = (out / "participants.tsv").read_text().splitlines()[0].split("\t")
    assert header == list(bids.PARTICIPANT_COLUMNS) + ["style"]
    subjects = bids.discover_subjects(out)
    assert sorted(s.diagnosis for s in subjects) == sorted(bids.DIAGNOSES)
    rows = [line.split("\t") for line in (out / "participants.tsv").read_text().splitlines()[1:]]
    assert {row[-1] for row in rows} == {"shifted"}
    for s in subjects:
        assert load_image(s.t2w).shape == (6, 64, 96) and s.t1c is not None
    description = json.loads((out / "dataset_description.json").read_text())
    assert "style shifted" in description["GeneratedBy"][0]["Description"]


def test_parallel_jobs_write_the_same_dataset(tmp_path):
    """Spawned workers (``--jobs 2``) write byte-identical files to one process, rows in order."""
    import hashlib

    def digests(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    for jobs in (1, 2):
        assert phantom.main(["-o", str(tmp_path / f"j{jobs}"), "-n", "5", "--seed", "21", "--shape", "48x64x5",
                             "--style", "randomised", "--with-t1c", "--jobs", str(jobs), "-v", "0"]) == 0
    one, two = digests(tmp_path / "j1"), digests(tmp_path / "j2")
    assert len(one) > 5 * 3 and one == two
    assert phantom.main(["-o", str(tmp_path / "bad"), "--jobs", "0"]) == 2
