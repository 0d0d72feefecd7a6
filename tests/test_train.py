"""Training building blocks: networks, splits, sampler, loop (resume, CSV), ONNX export parity."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from sct_lesion_classify.train.data import check_no_leakage, split_subjects  # noqa: E402
from sct_lesion_classify.train.loop import BalancedBatchSampler, LoopConfig, Monitor, fit  # noqa: E402

torch.set_num_threads(1)


def subject(pid, diagnosis, split=None):
    return SimpleNamespace(participant_id=pid, diagnosis=diagnosis, split=split)


def cohort(n=40, splits=False):
    diagnoses = ("astrocytoma", "ependymoma", "MS", "NMOSD")
    return [subject(f"sub-{i:03d}", diagnoses[i % 4],
                    (("train", "val", "test")[i % 3] if splits else None)) for i in range(n)]


def test_multiresunet_parameters_and_shape():
    from sct_lesion_classify.train.networks.multiresunet import MultiResUNet

    model = MultiResUNet(in_channels=1, base_filters=32, alpha=1.67)
    n = sum(p.numel() for p in model.parameters())
    assert 7.0e6 < n < 7.4e6  # "about 7.2 M parameters at 32 base filters"
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 32, 48)).shape == (1, 1, 32, 48)


def test_multiresunet_width_multiple_rounds_the_block_widths_up():
    from torch import nn

    from sct_lesion_classify.train.networks.multiresunet import MultiResUNet

    paper = MultiResUNet(base_filters=16)
    assert [block.out_channels for block in paper.encoders] == [25, 51, 105, 212, 426]  # 4+8+13, ...
    rounded = MultiResUNet(base_filters=16, width_multiple=8)
    assert [block.out_channels for block in rounded.encoders] == [32, 64, 120, 224, 432]
    convolutions = [m for m in rounded.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convolutions[:-1])  # all but the 1-channel head
    with torch.no_grad():
        assert rounded.eval()(torch.zeros(1, 1, 32, 48)).shape == (1, 1, 32, 48)


def test_deterministic_split_is_per_patient_stratified_and_stable():
    subjects = cohort(40)
    a = split_subjects(subjects, 0.2, seed=3)
    b = split_subjects(list(reversed(subjects)), 0.2, seed=3)
    assert [s.participant_id for s in a.val] == [s.participant_id for s in b.val]
    assert len(a.val) == 8 and len(a.train) == 32 and not a.test
    assert sorted(s.diagnosis for s in a.val) == sorted(["astrocytoma", "ependymoma", "MS", "NMOSD"] * 2)
    assert {s.participant_id for s in split_subjects(subjects, 0.2, seed=4).val} != {
        s.participant_id for s in a.val}


def test_no_patient_leakage_with_repeated_participants():
    subjects = cohort(20) + [subject("sub-001", "ependymoma"), subject("sub-002", "MS")]
    split = split_subjects(subjects, 0.3, seed=0)
    check_no_leakage(split)
    where = {}
    for name in ("train", "val", "test"):
        for s in getattr(split, name):
            assert where.setdefault(s.participant_id, name) == name


def test_split_column_is_used_and_test_is_held_out():
    subjects = cohort(12, splits=True)
    split = split_subjects(subjects, 0.2, seed=0)
    assert {s.split for s in split.train} == {"train"} and {s.split for s in split.val} == {"val"}
    resplit = split_subjects(subjects, 0.5, seed=0, use_split_column=False)
    assert {s.participant_id for s in resplit.test} == {s.participant_id for s in split.test}
    check_no_leakage(resplit)
    with pytest.raises(AssertionError):
        check_no_leakage(SimpleNamespace(train=(subjects[0],), val=(subjects[0],), test=()))


def test_balanced_sampler_draws_equal_halves_and_is_reproducible():
    groups = ([[0, 1, 2, 3, 4, 5, 6, 7]], [[8], [9]])  # class 0: one patient, class 1: two
    sampler = BalancedBatchSampler(groups, (0.5, 0.5), batch_size=8, steps=5, seed=1, epoch=2)
    batches = list(sampler)
    assert len(batches) == 5
    for batch in batches:
        assert sum(index >= 8 for index, _ in batch) == 4
    again = list(BalancedBatchSampler(groups, (0.5, 0.5), 8, 5, seed=1, epoch=2))
    assert batches == again


class ToyObjective:
    """A linear classifier on 2D points: enough to exercise fit()."""

    monitor = Monitor("val_loss", "min")

    def __init__(self):
        self.model = torch.nn.Linear(2, 1)
        rng = np.random.default_rng(0)
        self.x = torch.from_numpy(rng.normal(size=(64, 2)).astype(np.float32))
        self.y = (self.x[:, :1] > 0).float()

    def train_loader(self, epoch, seed):
        sampler = BalancedBatchSampler(
            ([[i] for i in range(64) if self.y[i] == 0], [[i] for i in range(64) if self.y[i] == 1]),
            (0.5, 0.5), 8, 3, seed, epoch)
        for batch in sampler:
            index = [i for i, _ in batch]
            yield self.x[index], self.y[index]

    def loss(self, logits, targets):
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)

    def batch_metrics(self, logits, targets):
        return {"accuracy": float(((logits > 0).float() == targets).float().mean())}

    def validate(self, predict):
        return {"val_loss": float(self.loss(predict(self.x), self.y))}


def test_fit_writes_log_best_checkpoint_and_resumes(tmp_path):
    torch.manual_seed(0)
    config = LoopConfig(epochs=3, steps_per_epoch=3, lr=0.05, patience=10, lr_patience=2,
                        run_dir=tmp_path / "run", seed=5, progress=False, identity={"name": "toy"})
    first = fit(ToyObjective(), config)
    assert first.epochs_run == 3 and (tmp_path / "run" / "best.pt").exists()
    rows = list(csv.DictReader(open(first.log_path)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and "train_loss" in rows[0] and "lr" in rows[0]
    resumed = fit(ToyObjective(), LoopConfig(**{**config.__dict__, "epochs": 5, "resume": True}))
    assert resumed.epochs_run == 5
    assert [r["epoch"] for r in csv.DictReader(open(resumed.log_path))] == ["1", "2", "3", "4", "5"]
    # an uninterrupted 5-epoch run gives the same weights as 3 + resumed 2
    torch.manual_seed(0)
    straight = ToyObjective()
    fit(straight, LoopConfig(**{**config.__dict__, "epochs": 5, "run_dir": tmp_path / "b"}))
    objective = ToyObjective()
    objective.model.load_state_dict(torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"])
    last_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for key, value in objective.model.state_dict().items():
        torch.testing.assert_close(value, last_b[key])
    from sct_lesion_classify.errors import InputError

    with pytest.raises(InputError):
        fit(ToyObjective(), LoopConfig(**{**config.__dict__, "resume": True, "identity": {"name": "other"}}))


def test_onnx_export_parity_dynamic_batch_and_size(tmp_path):
    pytest.importorskip("onnxscript")
    from sct_lesion_classify.train.export import export_onnx, onnx_parity, parity_shapes, with_sigmoid
    from sct_lesion_classify.train.networks.unet import cord_unet

    model = with_sigmoid(cord_unet(channels=(4, 8, 16))).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, in_channels=1, example_hw=(32, 48), dynamic_hw=True)
    shapes = parity_shapes(1, (32, 48), True, 4)
    assert shapes[0][0] != shapes[1][0] and shapes[0][2:] != shapes[1][2:]
    diff = onnx_parity(model, path, shapes, seed=7)
    assert diff < 1e-4


def test_float16_storage_is_lossless_with_trained_batch_norm(tmp_path):
    """Non-trivial BatchNorm statistics (as after training) must not break float16 storage.

    A graph with BatchNorm folded into the convolutions would hold weights that are no longer
    float16-rounded; storing them as float16 changed a trained U-Net's output by 3.7e-4.
    """
    pytest.importorskip("onnxscript")
    from sct_lesion_classify.train.export import export_onnx, onnx_parity, with_sigmoid
    from sct_lesion_classify.train.networks.unet import cord_unet
    from sct_lesion_classify.train.storage import round_weights_to_float16, store_initializers_as_float16

    torch.manual_seed(3)
    model = with_sigmoid(cord_unet(channels=(16, 32, 64))).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.05, 3.0)
                module.weight.normal_(1.0, 0.5)
    round_weights_to_float16(model)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, in_channels=1, example_hw=(32, 32), dynamic_hw=True)
    storage = store_initializers_as_float16(path)
    assert storage["converted_initializers"] > 0 and storage["kept_float32_initializers"] == 0
    assert storage["bytes_after"] < storage["bytes_before"]
    assert onnx_parity(model, path, ((2, 1, 32, 32), (1, 1, 48, 48)), seed=1) < 1e-5


def test_held_out_metrics_score_only_the_classifier_subjects_with_a_lesion_slice():
    from sct_lesion_classify.train.family import held_out_metrics
    from sct_lesion_classify.train.objectives import ClassifierObjective, finite_or_none
    from sct_lesion_classify.train.recipes import RECIPES

    def patient(label, n_slices):
        return SimpleNamespace(label=label, has_t1c=False, slice_indices=np.arange(n_slices),
                               slices=np.zeros((n_slices, 3, 8, 8), np.float32))

    train, val = [patient(0, 2), patient(1, 2)], [patient(0, 2), patient(1, 1), patient(1, 0)]
    objective = ClassifierObjective(None, RECIPES["tumor_vs_demyelinating"], train, val,
                                    batch_size=2, steps_per_epoch=1)
    result = SimpleNamespace(best_epoch=1, epochs_run=1, stopped_early=False, seconds_per_step=0.1)
    data = SimpleNamespace(val=val, test=[patient(1, 0)])
    metrics = held_out_metrics(objective, result, data, lambda batch: torch.zeros(len(batch), 1))
    # the patient without a lesion slice is left out of val, as in training's validation; no test set
    assert metrics["val"]["patients"] == 2 and metrics["val"]["slices"] == 3
    validated = finite_or_none(objective.validate(lambda b: torch.zeros(len(b), 1)))
    assert metrics["val"] == {key[len("val_"):]: value for key, value in validated.items()}
    assert "test" not in metrics
