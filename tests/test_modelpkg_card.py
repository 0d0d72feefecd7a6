"""Model card: schema (unknown fields, enums, patterns), semantic checks, round trip."""

from __future__ import annotations

import copy
import json

import pytest

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg.card import ModelCard, card_schema
from sct_lesion_classify.modelpkg.testing import tiny_card


@pytest.fixture(params=["lesion_segmentation", "cord_localization", "classification"])
def document(request):
    return tiny_card(f"tiny_{request.param}", request.param, sha256="a" * 64)


def test_schema_is_valid_draft_2020_12_and_closed():
    import jsonschema

    schema = card_schema()
    jsonschema.Draft202012Validator.check_schema(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


def test_round_trip(document):
    card = ModelCard.from_json(document)
    assert card.to_json() == document
    assert json.loads(json.dumps(card.to_json())) == document
    assert card.input.n_channels == len(document["input"]["channels"])
    with pytest.raises(AttributeError):
        card.name = "other"  # frozen


def test_classifier_fields(document):
    card = ModelCard.from_json(document)
    if card.task == "classification":
        assert card.input.spatial_size == (32, 32)
        assert card.output.classes[card.positive_index] == "tumor"
        assert card.decision.low_confidence_band == 0.1
        assert card.postprocessing is None
    else:
        assert card.postprocessing.remove_small == ("20mm3",)
        assert card.decision is None


def mutated(document, mutate):
    doc = copy.deepcopy(document)
    mutate(doc)
    return doc


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(extra=1), "unknown field 'extra'"),
    (lambda d: d["input"].update(foo=1), "unknown field 'input.foo'"),
    (lambda d: d["input"]["channels"][0].update(unit="a.u."), "unknown field 'input.channels[0].unit'"),
    (lambda d: d["training"]["subjects"].update(test=3), "unknown field 'training.subjects.test'"),
    (lambda d: d.update(task="detection"), "field 'task': 'detection' is not one of"),
    (lambda d: d["input"]["normalization"].update(method="percentile"),
     "field 'input.normalization.method'"),
    (lambda d: d["output"].update(activation="relu"), "field 'output.activation'"),
    (lambda d: d["input"].update(layout="NHWC"), "field 'input.layout'"),
    (lambda d: d["input"].update(slicing="axial"), "field 'input.slicing'"),
    (lambda d: d.update(version="1.0"), "field 'version'"),
    (lambda d: d.update(name="Bad-Name"), "field 'name'"),
    (lambda d: d.update(card_version=2), "field 'card_version'"),
    (lambda d: d["files"].update(sha256="XYZ"), "field 'files.sha256'"),
    (lambda d: d["input"].pop("tensor"), "missing field 'input.tensor'"),
    (lambda d: d.pop("license"), "missing field 'license'"),
    (lambda d: d["input"].update(spatial_size=[256]), "field 'input.spatial_size'"),
    (lambda d: d["input"].update(size_divisible_by=0), "field 'input.size_divisible_by'"),
    (lambda d: d["architecture"].update(parameters=1.5), "field 'architecture.parameters'"),
])
def test_schema_errors_name_the_file_and_field(document, mutate, expected):
    with pytest.raises(ModelError) as info:
        ModelCard.from_json(mutated(document, mutate), source="models/x/x.json")
    message = str(info.value)
    assert message.startswith("models/x/x.json: invalid model card: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("mutate, task, expected", [
    (lambda d: d["output"].update(positive_class="glioma"), "classification",
     "'output.positive_class': 'glioma' is not one of the classes"),
    (lambda d: d["output"].update(positive_class=None), "classification",
     "'output.positive_class': required"),
    (lambda d: d.update(decision=None), "classification", "'decision': required"),
    (lambda d: d.update(postprocessing={"threshold": 0.5, "fill_holes": True, "largest": False,
                                        "remove_small": []}),
     "classification", "'postprocessing': must be null"),
    (lambda d: d.update(postprocessing=None), "lesion_segmentation", "'postprocessing': required"),
    (lambda d: d.update(decision={"aggregation": "mean", "low_confidence_band": 0.1}),
     "cord_localization", "'decision': must be null"),
    (lambda d: d["files"].update(onnx="other.onnx"), "lesion_segmentation", "'files.onnx'"),
    (lambda d: d["input"].update(spatial_size=[30, 32], size_divisible_by=8),
     "classification", "not divisible"),
    (lambda d: d["input"]["normalization"].update(clip=[5, -5]), "classification",
     "'input.normalization.clip'"),
    (lambda d: d["input"].update(spacing_mm=None, spatial_size=None), "lesion_segmentation",
     "'input.spacing_mm'"),
    (lambda d: d["output"].update(activation="softmax", classes=["tumor"]), "classification",
     "softmax"),
])
def test_semantic_errors(mutate, task, expected):
    document = tiny_card("tiny", task, sha256="b" * 64)
    with pytest.raises(ModelError, match="tiny.json: invalid model card") as info:
        ModelCard.from_json(mutated(document, mutate), source="tiny.json")
    assert expected in str(info.value)


def test_load_bad_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelCard.load(path)
    path.write_text(json.dumps(tiny_card("x", sha256="c" * 64)).replace("0.5", "NaN", 1))
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelCard.load(path)
    with pytest.raises(ModelError, match="not found"):
        ModelCard.load(tmp_path / "missing.json")


def test_cam_tensor_is_optional_and_only_for_classifiers():
    from sct_lesion_classify.modelpkg.card import ModelCard
    from sct_lesion_classify.modelpkg.testing import tiny_card as _tiny_card

    old = _tiny_card("clf", "classification")
    assert "cam_tensor" not in old["output"]
    assert ModelCard.from_json(old).output.cam_tensor is None
    assert ModelCard.from_json(old).to_json() == old  # packages without CAM round-trip unchanged
    new = _tiny_card("clf", "classification")
    new["output"]["cam_tensor"] = "cam"
    assert ModelCard.from_json(new).output.cam_tensor == "cam"
    assert ModelCard.from_json(new).to_json() == new
    segmentation = _tiny_card("seg", "lesion_segmentation")
    segmentation["output"]["cam_tensor"] = "cam"
    with pytest.raises(ModelError, match="cam_tensor"):
        ModelCard.from_json(segmentation)
    new["output"]["cam_tensor"] = "output"
    with pytest.raises(ModelError, match="cam_tensor"):
        ModelCard.from_json(new)


def test_values_take_the_types_of_the_dataclass_fields(document):
    """JSON numbers become the annotated type (1 -> 1.0 for float fields), lists become tuples."""
    doc = copy.deepcopy(document)
    doc["training"]["wall_time_s"] = 3
    doc["input"]["min_lesion_area_mm2"] = None if doc["task"] != "classification" else 2
    card = ModelCard.from_json(doc)
    assert isinstance(card.training.wall_time_s, float) and card.training.wall_time_s == 3.0
    assert isinstance(card.input.channels, tuple) and card.input.channels[0].name == doc["input"]["channels"][0]["name"]
    assert isinstance(card.input.normalization.clip, tuple)
    if card.task == "classification":
        assert card.input.min_lesion_area_mm2 == 2.0 and isinstance(card.input.min_lesion_area_mm2, float)
        assert card.input.spatial_size == (32, 32)
    else:
        assert isinstance(card.postprocessing.threshold, float) and card.postprocessing.remove_small == ("20mm3",)
        assert card.input.spacing_mm == (0.5, 0.5)
    assert json.loads(json.dumps(card.to_json()))["training"]["wall_time_s"] == 3.0


def test_card_postprocessing_is_the_lesion_postprocessing_settings():
    from sct_lesion_classify.lesion.postprocess import Postprocessing, parse_size

    card = ModelCard.from_json(tiny_card("seg", "lesion_segmentation"))
    assert isinstance(card.postprocessing, Postprocessing)
    assert not card.postprocessing.soft and parse_size(card.postprocessing.remove_small[0]) == (20.0, "mm3")
