"""ModelPackage.load: folder layouts, sha256 verification (tampered, truncated, missing), cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg import package as package_module
from sct_lesion_classify.modelpkg.package import ModelPackage, clear_hash_cache, file_sha256
from sct_lesion_classify.modelpkg.testing import write_tiny_package


@pytest.fixture(autouse=True)
def _fresh_hash_cache():
    clear_hash_cache()
    yield
    clear_hash_cache()


def test_load_verifies(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    package = ModelPackage.load(folder)
    assert package.folder == folder.resolve()
    assert package.onnx_path == folder.resolve() / "tiny_seg.onnx"
    assert package.name == "tiny_seg" and package.version == "1.0.0"
    assert package.sha256 == hashlib.sha256(package.onnx_path.read_bytes()).hexdigest()
    assert package.card_path.name == "tiny_seg.json"


def test_cache_layout_name_version(tmp_path):
    folder = write_tiny_package(tmp_path / "tiny_seg", "tiny_seg", version="2.1.0",
                                folder_name="2.1.0")
    assert ModelPackage.load(folder).version == "2.1.0"


def test_folder_name_must_match(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg", folder_name="renamed")
    with pytest.raises(ModelError, match="must be named 'tiny_seg'"):
        ModelPackage.load(folder)


def _tamper(path, payload):
    stat = path.stat()
    path.write_bytes(payload)
    return stat


def test_tampered_file_refused_with_both_hashes(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    onnx_path = folder / "tiny_seg.onnx"
    expected = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    ModelPackage.load(folder)  # fills the cache
    payload = bytearray(onnx_path.read_bytes())
    payload[-1] ^= 0xFF
    onnx_path.write_bytes(bytes(payload))
    os.utime(onnx_path, ns=(1, 1))  # a new mtime: the cache must not hide the change
    actual = hashlib.sha256(bytes(payload)).hexdigest()
    with pytest.raises(ModelError) as info:
        ModelPackage.load(folder)
    message = str(info.value)
    assert expected in message and actual in message and "sha256 mismatch" in message
    assert "tiny_seg" in message


def test_truncated_file_refused(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    onnx_path = folder / "tiny_seg.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:20])
    with pytest.raises(ModelError, match="sha256 mismatch"):
        ModelPackage.load(folder)
    # verify=False only checks presence
    assert ModelPackage.load(folder, verify=False).name == "tiny_seg"


def test_missing_files(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    (folder / "tiny_seg.onnx").unlink()
    with pytest.raises(ModelError, match="ONNX file of package 'tiny_seg' not found"):
        ModelPackage.load(folder)
    with pytest.raises(ModelError, match="folder not found"):
        ModelPackage.load(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a model package"):
        ModelPackage.load(empty)


def test_card_name_must_match_file(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    card = json.loads((folder / "tiny_seg.json").read_text())
    card["name"] = "other"
    card["files"]["onnx"] = "other.onnx"
    (folder / "tiny_seg.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="differs from its file name"):
        ModelPackage.load(folder)


def test_invalid_card_names_the_file(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg", card_overrides={"unexpected": True})
    with pytest.raises(ModelError, match=r"tiny_seg\.json: invalid model card: unknown field"):
        ModelPackage.load(folder)


def test_hash_computed_once(tmp_path, monkeypatch):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    calls = []
    real = package_module.hashlib.sha256
    monkeypatch.setattr(package_module.hashlib, "sha256", lambda: calls.append(1) or real())
    for _ in range(5):
        ModelPackage.load(folder)
    assert len(calls) == 1
    # a copy at another path is hashed on its own
    copy = tmp_path / "copy" / "tiny_seg"
    shutil.copytree(folder, copy)
    ModelPackage.load(copy)
    assert len(calls) == 2
    assert file_sha256(copy / "tiny_seg.onnx") == file_sha256(folder / "tiny_seg.onnx")
