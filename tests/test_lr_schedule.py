"""The training loop's learning-rate schedules (warm-up + cosine, plateau)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sct_lesion_classify.errors import InputError  # noqa: E402
from sct_lesion_classify.train.loop import LoopConfig, Monitor, _scheduler  # noqa: E402


def rates(config: LoopConfig) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=config.lr)
    scheduler = _scheduler(torch, optimizer, Monitor("val", "max"), config)
    seen = []
    for _ in range(config.epochs * config.steps_per_epoch):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_cosine_warms_up_then_decays_to_the_floor_at_the_last_step():
    config = LoopConfig(epochs=5, steps_per_epoch=10, lr=1e-3, patience=3, lr_patience=2,
                        run_dir=Path("unused"), schedule="cosine", warmup_epochs=1, min_lr=1e-5)
    seen = rates(config)
    assert seen[0] == pytest.approx(1e-4)  # 1/10 of the way through the warm-up
    assert seen[9] == pytest.approx(1e-3)  # warm-up done after one epoch
    assert all(a >= b for a, b in zip(seen[9:], seen[10:]))  # then never rises

    def cosine(step: int) -> float:  # steps after the warm-up, over the 40 that follow it
        return 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * step / 40))

    assert seen[30] == pytest.approx(cosine(20), rel=1e-6)  # half-way: the mean of lr and floor
    assert seen[30] == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-6)
    assert seen[-1] == pytest.approx(cosine(39), rel=1e-6) and seen[-1] < 2e-5


def test_unknown_schedule_is_refused():
    config = LoopConfig(epochs=1, steps_per_epoch=1, lr=1e-3, patience=1, lr_patience=1,
                        run_dir=Path("unused"), schedule="step")
    with pytest.raises(InputError, match="unknown learning-rate schedule 'step'"):
        rates(config)
