"""Session-wide test settings: ONNX Runtime's optimised-graph cache goes to a temporary folder.

Without this, every test that builds a session would write the optimised graphs of its packages
(hundreds of tiny ones) into the user's ``~/.cache/sct_lesion_classify/onnxruntime``. The tests of
the cache itself (``test_graph_cache.py``) set their own folders.
"""

from __future__ import annotations

import pytest

from sct_lesion_classify.runtime.graph_cache import ENV_GRAPH_CACHE


@pytest.fixture(autouse=True, scope="session")
def _graph_cache_in_tmp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ort_graph_cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv(ENV_GRAPH_CACHE, str(folder))
    yield folder
    patcher.undo()


@pytest.fixture
def slow_classifier_sessions(monkeypatch):
    """Classifier sessions that take 0.3 s more to build (so that background builds are caught
    running); returns a function listing the background build threads still alive."""
    import threading
    import time

    from sct_lesion_classify.classify import inference

    real = inference.Classifier.__init__

    def slow(self, *args, **kwargs):
        time.sleep(0.3)
        real(self, *args, **kwargs)

    monkeypatch.setattr(inference.Classifier, "__init__", slow)
    return lambda: [t for t in threading.enumerate()
                    if t.name.startswith("sct_lesion_classify-build") and t.is_alive()]
