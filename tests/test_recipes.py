"""Training recipes: the card contract they build is the one of the shipped packages (no torch)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.train.family import card_skeleton
from sct_lesion_classify.train.recipes import CAM_OUTPUT, CORD, RECIPES, SEGMENTATION_LOSSES

MODELS = Path(__file__).resolve().parents[1] / "models"


def shipped_contract(recipe, shipped):
    """The recipe with the input contract of the shipped package (classifiers bundled before
    ``--input-contract`` existed use the paper's whole slice and do not name it), or with the
    shipped segmentation model's loss (``--loss``)."""
    if recipe.task != "classification":
        names = {label: key for key, label in SEGMENTATION_LOSSES.items()}
        return recipe.with_loss(names[shipped.architecture.details.get("loss", "Dice + BCE")])
    return recipe.with_input_contract(shipped.architecture.details.get("input_contract", "whole_slice"))


def bundled_recipe(name):
    """The recipe of a bundled package: a family's, or a classifier's cT1w-aware variant (``_t1c``)."""
    if name.endswith("_t1c"):
        return RECIPES[name.removesuffix("_t1c")].t1c_variant()
    return RECIPES[name]


#: Every bundled package: the five families and the three cT1w-aware classifiers.
BUNDLED = sorted([*RECIPES, *(f"{family}_t1c" for family, r in RECIPES.items() if r.task == "classification")])


@pytest.mark.parametrize("name", BUNDLED)
def test_recipe_builds_the_contract_of_the_bundled_package(name):
    recipe = bundled_recipe(name)
    shipped = ModelCard.load(MODELS / recipe.name / f"{recipe.name}.json")
    recipe = shipped_contract(recipe, shipped)
    assert recipe.input_spec() == shipped.input
    assert recipe.output_spec() == shipped.output
    assert recipe.postprocessing == shipped.postprocessing
    if recipe.decision is None:
        assert shipped.decision is None
    else:  # the calibration is fitted after training (train, then calibrate): the rest is the recipe's
        assert dataclasses.replace(recipe.decision, calibration=shipped.decision.calibration) == shipped.decision
    details = dict(recipe.architecture_details)
    shipped_details = dict(shipped.architecture.details)
    shipped_details.pop("initial_weights", None)  # a fine-tuned model's starting checkpoint (--init-from)
    if recipe.task == "classification" and "input_contract" not in shipped.architecture.details:
        assert details.pop("input_contract") == "whole_slice"
    assert details == shipped_details
    assert recipe.task == shipped.task


@pytest.mark.parametrize("family", ["tumor_vs_demyelinating", "astrocytoma_vs_ependymoma", "ms_vs_nmosd"])
def test_classifiers_default_to_the_lesion_roi_and_keep_the_paper_contract_as_an_option(family):
    roi = RECIPES[family].input_spec()
    assert (roi.spatial_size, roi.spacing_mm, roi.centred_on) == ((64, 192), (1.25, 1.25), "lesion")
    assert RECIPES[family].architecture_details["input_contract"] == "lesion_roi"
    assert RECIPES[family].augment.flip_prob == 0.0  # orientation carries the level
    paper = RECIPES[family].with_input_contract("whole_slice").input_spec()
    assert (paper.spatial_size, paper.spacing_mm, paper.centred_on) == ((256, 256), None, None)
    with pytest.raises(InputError, match="unknown input contract"):
        RECIPES[family].with_input_contract("crop")


@pytest.mark.parametrize("name", BUNDLED)
def test_card_skeleton_is_a_valid_card_in_the_documented_key_order(name):
    recipe = bundled_recipe(name)
    shipped = json.loads((MODELS / recipe.name / f"{recipe.name}.json").read_text())
    recipe = shipped_contract(recipe, ModelCard.from_json(shipped))
    document = card_skeleton(recipe, "1.2.3").to_json()
    parsed = ModelCard.from_json(json.loads(json.dumps(document)))
    assert parsed.to_json() == document
    # train adds the optional sections it measures or fits on its data: training_data, and the
    # classifiers' fusion head
    card = ModelCard.from_json(shipped)
    trained = dataclasses.replace(parsed, training_data=card.training_data, fusion=card.fusion).to_json()
    assert list(trained) == list(shipped)
    assert list(document["input"]) == list(shipped["input"])
    assert document["version"] == "1.2.3" and document["files"]["onnx"] == f"{recipe.name}.onnx"


def test_classifiers_name_their_cam_output_and_segmenters_have_none():
    for recipe in RECIPES.values():
        cam = recipe.output_spec().cam_tensor
        if recipe.task == "classification":
            assert cam == CAM_OUTPUT
            assert "cam_tensor" in card_skeleton(recipe, "0.1.0").to_json()["output"]
        else:
            assert cam is None
            assert "cam_tensor" not in card_skeleton(recipe, "0.1.0").to_json()["output"]


def test_t1c_variant_changes_the_first_channel_and_only_classifiers_have_one():
    variant = RECIPES["ms_vs_nmosd"].t1c_variant()
    assert variant.name == "ms_vs_nmosd_t1c"
    assert [c.name for c in variant.input_spec().channels] == ["cT1w", "T2w", "lesion_mask"]
    with pytest.raises(InputError, match="--with-t1c applies to the classifiers"):
        CORD.t1c_variant()
    with pytest.raises(InputError, match="--input-contract applies to the classifiers"):
        CORD.with_input_contract("lesion_roi")


def test_the_lesion_network_is_built_at_the_chosen_width():
    pytest.importorskip("torch")  # the inference-only environment has no torch

    def weights(network):
        return sum(parameter.numel() for parameter in network.parameters())

    lesion = RECIPES["lesion"]
    coarse = lesion.with_grid(spacing_mm=1.0, base_filters=8)
    chosen = weights(coarse.build_network())
    assert chosen == weights(lesion.scalable_network(8, in_channels=1))
    assert chosen < weights(lesion.build_network())


def test_lesion_grid_and_width_can_be_chosen_and_the_patches_keep_their_extent_in_mm():
    lesion = RECIPES["lesion"]
    coarse = lesion.with_grid(spacing_mm=1.0, base_filters=8)
    assert coarse.input_spec().spacing_mm == (1.0, 1.0)
    assert coarse.architecture_details["base_filters"] == 8
    extent = [size * step for size, step in zip(lesion.patch_size, lesion.spacing_mm)]
    assert [size * step for size, step in zip(coarse.patch_size, coarse.spacing_mm)] == extent
    assert all(size % coarse.size_divisible_by == 0 for size in coarse.patch_size)
    assert lesion.with_grid() is lesion
    assert lesion.with_grid(base_filters=16).spacing_mm == lesion.spacing_mm
    with pytest.raises(InputError, match="must be positive"):
        lesion.with_grid(spacing_mm=-0.5)
    for fixed in (CORD, RECIPES["ms_vs_nmosd"]):
        with pytest.raises(InputError, match="apply to the lesion model, not to"):
            fixed.with_grid(spacing_mm=0.75)
        assert fixed.with_grid() is fixed


def test_segmentation_loss_can_be_chosen_and_the_card_names_it():
    assert CORD.loss == "dice_bce" and CORD.architecture_details["loss"] == "Dice + BCE"
    bce = CORD.with_loss("bce")
    assert bce.loss == "bce" and bce.architecture_details["loss"] == SEGMENTATION_LOSSES["bce"] == "BCE"
    assert card_skeleton(bce, "1.0.0").architecture.details["loss"] == "BCE"
    assert CORD.with_loss(None) is CORD and CORD.with_loss("dice_bce") is CORD
    with pytest.raises(InputError, match="unknown loss 'focal'"):
        CORD.with_loss("focal")
    with pytest.raises(InputError, match="--loss applies to the segmentation families"):
        RECIPES["ms_vs_nmosd"].with_loss("bce")
    assert RECIPES["ms_vs_nmosd"].with_loss(None) is RECIPES["ms_vs_nmosd"]
