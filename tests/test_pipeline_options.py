"""The run options (``pipeline.options``) and the one selection of model packages (``pipeline.models``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sct_lesion_classify.batch.subject_job import BatchSettings
from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.cli import classify_lesion
from sct_lesion_classify.cli.common import segmentation_options
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package
from sct_lesion_classify.pipeline.models import ModelFingerprint, choose_classifiers, select_models
from sct_lesion_classify.pipeline.options import SegmentationOptions
from sct_lesion_classify.pipeline.segmentation import SegmentationRequest

T1C_ROLE = "ms_vs_nmosd"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    found = {"cord": write_tiny_package(root, "tiny_cord", "cord_localization"),
             "lesion": write_tiny_package(root, "tiny_lesion", "lesion_segmentation")}
    for role, classes in ROLE_CLASSES.items():
        card = tiny_card(role, "classification")
        found[role] = write_tiny_package(root, role, "classification", card_overrides={
            "output": dict(card["output"], classes=list(classes), positive_class=classes[0])})
    card = tiny_card(f"{T1C_ROLE}_t1c", "classification")
    channels = [{"name": "cT1w", "description": "cT1w"}] + card["input"]["channels"][1:]
    found["t1c"] = write_tiny_package(root, f"{T1C_ROLE}_t1c", "classification", card_overrides={
        "output": dict(card["output"], classes=list(ROLE_CLASSES[T1C_ROLE]), positive_class="MS"),
        "input": dict(card["input"], channels=channels)})
    return found


@pytest.mark.parametrize("cord_method", ["auto", "builtin", "sct"])
@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("save_cord", [True, False])
@pytest.mark.parametrize("cord_mask", [True, False])
def test_one_rule_says_when_the_cord_localizer_runs(cord_method, crop, save_cord, cord_mask):
    options = SegmentationOptions(cord_method=cord_method, crop=crop, save_cord=save_cord)
    expected = not cord_mask and cord_method != "sct" and (crop or save_cord)
    assert options.needs_builtin_cord(cord_mask_given=cord_mask) == expected
    if not (cord_mask and cord_method == "sct"):
        request = SegmentationRequest(Path("t2.nii.gz"), cord_mask_path=Path("s.nii.gz") if cord_mask else None,
                                      options=options)
        assert request.needs_builtin_cord == expected
    settings = BatchSettings(Path("/b"), Path("/o"), use_manual_cord=cord_mask, segmentation=options)
    assert settings.needs_cord_localizer == expected
    manual_lesion = BatchSettings(Path("/b"), Path("/o"), use_manual_lesion=True, segmentation=options)
    assert not manual_lesion.needs_cord_localizer


def test_options_are_checked_and_built_once_from_the_command_line():
    with pytest.raises(InputError, match="-cord-method must be one of"):
        SegmentationOptions(cord_method="magic")
    with pytest.raises(InputError, match="-cord-method sct and -s are exclusive"):
        SegmentationRequest(Path("t2.nii.gz"), cord_mask_path=Path("s.nii.gz"),
                            options=SegmentationOptions(cord_method="sct"))
    args = classify_lesion.get_parser().parse_args(
        ["-i", "t2.nii.gz", "-no-crop", "-thr", "0.3", "-largest", "1", "-remove-small", "20MM3", "5vox",
         "-cord-method", "builtin", "-r", "0"])
    assert segmentation_options(args) == SegmentationOptions(
        cord_method="builtin", save_cord=False, crop=False, threshold=0.3, largest=True, fill_holes=None,
        remove_small=("20mm3", "5vox"), remove_temp=False)


def test_the_cT1w_variant_is_chosen_per_role_with_a_warning_for_the_others():
    defaults = {role: f"{role}-T2w" for role in ROLE_CLASSES}
    variants = {T1C_ROLE: f"{T1C_ROLE}-cT1w"}
    assert choose_classifiers(defaults, variants, with_t1c=False) == (defaults, ())
    used, warnings = choose_classifiers(defaults, variants, with_t1c=True)
    assert used == {**defaults, T1C_ROLE: f"{T1C_ROLE}-cT1w"} and list(used) == list(ROLE_CLASSES)
    others = [role for role in ROLE_CLASSES if role != T1C_ROLE]
    assert warnings == (f"-i-t1c given but no cT1w-aware model is installed for {', '.join(others)}: "
                        "the cT1w image is ignored there (T2w-only models used)",)


def test_select_models_gives_the_packages_and_fingerprints_of_each_image(folders, tmp_path, monkeypatch):
    # only the custom cT1w variant exists: no bundled or cached ones
    monkeypatch.setenv("SCT_LESION_CLASSIFY_BUNDLED_DIR", str(tmp_path / "no_bundled"))
    monkeypatch.setenv("SCT_LESION_CLASSIFY_MODELS_DIR", str(tmp_path / "no_cache"))
    selection = select_models(list(folders.values()), segment=True, cord_localizer=True, t1c=True)
    assert [p.name for p in selection.segmentation] == ["tiny_cord", "tiny_lesion"]
    assert [p.name for p in selection.packages(with_t1c=False)] == ["tiny_cord", "tiny_lesion", *ROLE_CLASSES]
    with_t1c = [p.name for p in selection.packages(with_t1c=True, segmented=False)]
    assert with_t1c == [f"{r}_t1c" if r == T1C_ROLE else r for r in ROLE_CLASSES]
    fingerprints = selection.fingerprints(with_t1c=True, segmented=False)
    assert fingerprints == tuple(ModelFingerprint(p.name, p.version, p.sha256)
                                 for p in selection.packages(with_t1c=True, segmented=False))
    assert fingerprints[-1].label == f"{T1C_ROLE}_t1c 1.0.0"

    masks_given = select_models(list(folders.values()), segment=False, cord_localizer=True)
    assert masks_given.lesion is None and masks_given.cord is None and not masks_given.t1c_classifiers
    assert [p.name for p in masks_given.packages(with_t1c=True)] == list(ROLE_CLASSES)
    segmentation_only = select_models([folders["lesion"]], segment=True, cord_localizer=False, classify=False)
    assert [p.name for p in segmentation_only.packages(with_t1c=False)] == ["tiny_lesion"]
