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
