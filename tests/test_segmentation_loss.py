"""The segmentation losses: a soft Dice term widens an uncertain rim, cross-entropy alone does not."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sct_lesion_classify.train.objectives import SEGMENTATION_LOSS_FUNCTIONS  # noqa: E402
from sct_lesion_classify.train.recipes import SEGMENTATION_LOSSES  # noqa: E402


def fitted_probabilities(loss, samples=20, rim_positive=9):
    """One free logit per pixel, fitted to ``samples`` targets: 10 core pixels always target, 20 rim
    pixels target in ``rim_positive`` of the samples (a boundary whose true probability is 0.45),
    70 background pixels never; returns the mean fitted probability of the core, rim, background."""
    targets = torch.zeros(samples, 1, 1, 100)
    targets[:, :, :, :10] = 1
    targets[:rim_positive, :, :, 10:30] = 1
    logits = torch.zeros(1, 1, 1, 100, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        loss(logits.expand(samples, 1, 1, 100), targets).backward()
        optimizer.step()
    p = logits.detach().sigmoid()[0, 0, 0]
    return float(p[:10].mean()), float(p[10:30].mean()), float(p[30:].mean())


def test_every_loss_the_recipes_name_has_a_function_and_a_command_line_choice():
    from sct_lesion_classify.cli.train import get_parser

    assert set(SEGMENTATION_LOSS_FUNCTIONS) == set(SEGMENTATION_LOSSES)
    # the command line spells the choices out (importing the recipes would slow its -h)
    (action,) = [a for a in get_parser()._actions if a.dest == "loss"]
    assert set(action.choices) == set(SEGMENTATION_LOSSES)


def test_cross_entropy_keeps_a_45_percent_rim_below_the_threshold_and_soft_dice_includes_it():
    core, rim, background = fitted_probabilities(SEGMENTATION_LOSS_FUNCTIONS["bce"])
    assert core > 0.99 and background < 0.01
    assert rim == pytest.approx(0.45, abs=0.01)  # calibrated: thresholded at 0.5, the rim stays out
    core, rim, background = fitted_probabilities(SEGMENTATION_LOSS_FUNCTIONS["dice_bce"])
    assert core > 0.99 and background < 0.01
    assert rim > 0.5  # the soft Dice term pushes it over: the thresholded structure is wider
