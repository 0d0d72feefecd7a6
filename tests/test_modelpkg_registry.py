"""Registry file, roots from the environment, resolution order custom > cached > bundled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sct_lesion_classify
from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg import registry as reg
from sct_lesion_classify.modelpkg.testing import write_tiny_package

REPO = Path(sct_lesion_classify.__file__).resolve().parents[1]


@pytest.fixture
def roots(tmp_path, monkeypatch):
    cache, bundled = tmp_path / "cache", tmp_path / "bundled"
    cache.mkdir()
    bundled.mkdir()
    monkeypatch.setenv(reg.ENV_CACHE_DIR, str(cache))
    monkeypatch.setenv(reg.ENV_BUNDLED_DIR, str(bundled))
    return cache, bundled


def write_registry(bundled, packages):
    (bundled / "registry.json").write_text(json.dumps({"registry_version": 1,
                                                       "packages": packages}))


def test_shipped_registry_is_valid():
    registry = reg.load_registry(REPO / "models" / "registry.json")
    assert registry.path is not None
    for entry in registry.entries.values():
        assert entry.bundled or (entry.url and entry.sha256)


def test_default_roots(monkeypatch):
    monkeypatch.delenv(reg.ENV_CACHE_DIR, raising=False)
    monkeypatch.delenv(reg.ENV_BUNDLED_DIR, raising=False)
    assert reg.bundled_root() == REPO / "models"
    assert reg.cache_root() == Path.home() / ".cache" / "sct_lesion_classify" / "models"
    assert reg.registry_path() == REPO / "models" / "registry.json"


def test_env_overrides(roots):
    cache, bundled = roots
    assert reg.cache_root() == cache.resolve()
    assert reg.bundled_root() == bundled.resolve()
    assert reg.load_registry().entries == {}  # no registry file there: empty


@pytest.mark.parametrize("packages, expected", [
    ({"a": {"version": "1.0.0", "task": "classification"}}, "'packages.a'"),
    ({"a": {"version": "1.0.0", "task": "classification", "url": "https://x/a.zip"}}, "sha256"),
    ({"a": {"version": "1.0.0", "task": "classification", "bundled": True, "foo": 1}},
     "unknown field 'packages.a.foo'"),
    ({"A-b": {"version": "1.0.0", "task": "classification", "bundled": True}}, "packages"),
    ({"a": {"version": "1.0.0", "task": "classification", "url": "ftp://x/a.zip",
            "sha256": "0" * 64}}, "'packages.a.url'"),
])
def test_invalid_registry(roots, packages, expected):
    write_registry(roots[1], packages)
    with pytest.raises(ModelError, match="invalid model registry") as info:
        reg.load_registry()
    assert expected in str(info.value)
    assert "registry.json" in str(info.value)


def test_resolution_order(roots, tmp_path):
    cache, bundled = roots
    write_registry(bundled, {"tiny_seg": {"version": "1.1.0", "task": "lesion_segmentation",
                                          "bundled": True}})
    # bundled only
    write_tiny_package(bundled, "tiny_seg", version="1.1.0")
    location = reg.locate("tiny_seg")
    assert (location.source, location.folder) == ("bundled", bundled / "tiny_seg")
    # an older cached version does not win over the bundled registry version
    write_tiny_package(cache / "tiny_seg", "tiny_seg", version="1.0.0", folder_name="1.0.0")
    assert reg.locate("tiny_seg").source == "bundled"
    # the registry's version in the cache wins over bundled
    write_tiny_package(cache / "tiny_seg", "tiny_seg", version="1.1.0", folder_name="1.1.0")
    location = reg.locate("tiny_seg")
    assert (location.source, location.folder) == ("cached", cache / "tiny_seg" / "1.1.0")
    assert reg.resolve("tiny_seg").version == "1.1.0"
    # an explicit folder wins over everything
    custom = write_tiny_package(tmp_path / "mine", "my_seg")
    package = reg.resolve("tiny_seg", custom_folder=custom)
    assert package.name == "my_seg" and package.folder == custom.resolve()


def test_unlisted_name_uses_newest_cached(roots):
    cache, _ = roots
    for version in ("1.2.0", "1.10.0", "1.9.0-rc1"):
        write_tiny_package(cache / "extra", "extra", version=version, folder_name=version)
    assert reg.cached_versions("extra") == ["1.2.0", "1.9.0-rc1", "1.10.0"]
    assert reg.resolve("extra").version == "1.10.0"


def test_stale_cache_used_with_warning(roots, caplog):
    cache, bundled = roots
    write_registry(bundled, {"tiny_seg": {"version": "2.0.0", "task": "lesion_segmentation",
                                          "url": "https://example.org/tiny_seg.zip",
                                          "sha256": "0" * 64}})
    with pytest.raises(ModelError, match="not installed; run: sct_lesion_classify models install"):
        reg.locate("tiny_seg")
    write_tiny_package(cache / "tiny_seg", "tiny_seg", version="1.0.0", folder_name="1.0.0")
    with caplog.at_level("WARNING"):
        assert reg.locate("tiny_seg").folder.name == "1.0.0"
    assert "not the registry's 2.0.0" in caplog.text


def test_unknown_and_bad(roots, tmp_path):
    with pytest.raises(ModelError, match="'nothing' not found"):
        reg.resolve("nothing")
    with pytest.raises(ModelError, match="invalid model package name"):
        reg.resolve("../etc")
    with pytest.raises(InputError, match="model folder not found"):
        reg.resolve("x", custom_folder=tmp_path / "absent")


def test_custom_folder_task_must_match_registry(roots, tmp_path):
    write_registry(roots[1], {"ms_vs_nmosd": {"version": "1.0.0", "task": "classification",
                                              "bundled": True}})
    custom = write_tiny_package(tmp_path, "my_seg")
    with pytest.raises(ModelError, match="is a lesion_segmentation model, but 'ms_vs_nmosd' needs"):
        reg.resolve("ms_vs_nmosd", custom_folder=custom)


def test_resolve_verifies(roots):
    cache, _ = roots
    folder = write_tiny_package(cache / "tiny_seg", "tiny_seg", folder_name="1.0.0")
    onnx_path = folder / "tiny_seg.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        reg.resolve("tiny_seg")
    assert reg.resolve("tiny_seg", verify=False).name == "tiny_seg"


def test_iter_locations(roots):
    cache, bundled = roots
    write_tiny_package(bundled, "a_seg")
    write_tiny_package(cache / "b_seg", "b_seg", folder_name="1.0.0")
    write_tiny_package(cache / "b_seg", "b_seg", version="1.1.0", folder_name="1.1.0")
    (cache / "b_seg" / ".install-tmp").mkdir()
    found = [(loc.name, loc.source, loc.folder.name) for loc in reg.iter_locations()]
    assert found == [("a_seg", "bundled", "a_seg"), ("b_seg", "cached", "1.0.0"),
                     ("b_seg", "cached", "1.1.0")]
