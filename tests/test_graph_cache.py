"""ONNX Runtime's optimised graph cache: built once, verified on every load, same outputs."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest

from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package
from sct_lesion_classify.runtime import graph_cache
from sct_lesion_classify.runtime.graph_cache import ENV_GRAPH_CACHE, CachedGraph, graph_cache_root
from sct_lesion_classify.runtime.graph_rewrite import REWRITE_VERSION
from sct_lesion_classify.runtime.session import Predictor


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENV_GRAPH_CACHE, str(folder))
    return folder


def _package(tmp_path, **kwargs):
    return ModelPackage.load(write_tiny_package(tmp_path / "models", "tiny_seg", **kwargs))


def _entries(folder):
    return sorted(p.name for p in folder.glob("*.ort"))


def _predict(package):
    batch = np.random.default_rng(3).normal(size=(2, 1, 16, 24)).astype(np.float32)
    return Predictor.create(package, threads=1).predict(batch)


def test_first_session_saves_the_graph_and_later_ones_load_it(tmp_path, cache, caplog):
    package = _package(tmp_path, weight=2.0, bias=-1.0)
    reference = _predict(package)
    (entry,) = _entries(cache)
    assert entry.startswith(f"tiny_seg-{package.sha256[:16]}-ort")
    import onnxruntime

    graph = CachedGraph.of(package, cache, onnxruntime.__version__)
    assert f"-ort{onnxruntime.__version__}-r{REWRITE_VERSION}-cpu" in entry
    assert graph.path.name == entry and graph.verified()
    mtime = graph.path.stat().st_mtime_ns
    with caplog.at_level(logging.DEBUG, logger="sct_lesion_classify.runtime"):
        again = _predict(package)
    assert np.array_equal(again, reference)
    assert graph.path.stat().st_mtime_ns == mtime  # loaded, not rebuilt
    assert not any("saved to" in r.getMessage() for r in caplog.records)
    assert not list(cache.glob("*.tmp"))


def test_options_of_saving_and_of_loading(tmp_path, cache, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    captured = []
    real = ort.InferenceSession

    def spy(model, sess_options=None, providers=None):
        captured.append((model, sess_options))
        return real(model, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    package = _package(tmp_path, weight=2.0, bias=-1.0)
    _predict(package)
    _predict(package)
    (built, saving), (loaded, loading) = captured
    assert built == str(package.onnx_path)
    assert saving.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert saving.get_session_config_entry("session.save_model_format") == "ORT"
    assert loaded == str(next(cache.glob("*.ort")))
    assert loading.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert loading.get_session_config_entry("session.use_env_allocators") == "1"
    assert loading.intra_op_num_threads == 1


def test_a_modified_graph_is_rebuilt_never_used(tmp_path, cache):
    package = _package(tmp_path, weight=2.0, bias=-1.0)
    reference = _predict(package)
    (path,) = cache.glob("*.ort")
    # a graph of other weights under this package's name: its bytes no longer match the sidecar
    other = _package(tmp_path / "other", weight=-5.0, bias=3.0)
    _predict(other)
    (other_path,) = [p for p in cache.glob("*.ort") if p != path]
    path.write_bytes(other_path.read_bytes())
    assert np.array_equal(_predict(package), reference)
    assert CachedGraph(path, path.name.split("-ort")[0]).verified()  # rebuilt


def test_a_graph_that_does_not_load_is_discarded(tmp_path, cache):
    package = _package(tmp_path, weight=2.0, bias=-1.0)
    reference = _predict(package)
    (path,) = cache.glob("*.ort")
    garbage = b"not a graph" * 10
    path.write_bytes(garbage)
    import hashlib
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(garbage).hexdigest())
    assert np.array_equal(_predict(package), reference)
    assert path.read_bytes() != garbage


def test_a_new_package_file_gets_a_new_entry(tmp_path, cache):
    first = _predict(_package(tmp_path / "a", weight=2.0, bias=-1.0))
    second = _predict(_package(tmp_path / "b", weight=-2.0, bias=1.0))
    assert len(_entries(cache)) == 2
    assert not np.allclose(first, second)


def test_stale_entries_of_the_same_package_are_pruned(tmp_path, cache):
    package = _package(tmp_path, weight=2.0, bias=-1.0)
    _predict(package)
    (path,) = cache.glob("*.ort")
    package_key = path.name.split("-ort")[0]
    stale = cache / f"{package_key}-ort0.0.1-r0-cpu{graph_cache.cpu_signature()}.ort"  # an older ONNX Runtime
    stale.write_bytes(b"old")
    other_cpu = cache / f"{package_key}-ort0.0.1-r0-cpu000000000000.ort"  # another node's
    other_cpu.write_bytes(b"other")
    leftover = cache / f".{path.name}.abc123.tmp"  # a process killed while saving, two hours ago
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    recent = cache / f".{path.name}.def456.tmp"  # another process saving now
    recent.write_bytes(b"partial")
    path.unlink()
    _predict(package)
    assert _entries(cache) == sorted([path.name, other_cpu.name])
    assert not leftover.exists() and recent.exists()


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_cache_can_be_turned_off(tmp_path, monkeypatch, value):
    monkeypatch.setenv(ENV_GRAPH_CACHE, value)
    assert graph_cache_root() is None
    _predict(_package(tmp_path, weight=2.0, bias=-1.0))
    assert not list(tmp_path.rglob("*.ort"))


def test_an_unwritable_cache_costs_nothing_but_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(ENV_GRAPH_CACHE, str(blocker / "cache"))
    package = _package(tmp_path, weight=2.0, bias=-1.0)
    batch = np.ones((1, 1, 16, 16), np.float32)
    np.testing.assert_allclose(Predictor.create(package, threads=1).predict(batch),
                               1.0 / (1.0 + np.exp(-1.0)), rtol=1e-5)


def test_default_root_and_cpu_signature(monkeypatch):
    monkeypatch.delenv(ENV_GRAPH_CACHE, raising=False)
    assert graph_cache_root().parts[-3:] == (".cache", "sct_lesion_classify", "onnxruntime")
    signature = graph_cache.cpu_signature()
    assert len(signature) == 12 and int(signature, 16) >= 0
