"""Where a new ``sct_classify_lesion -i`` process spends its time before and around the networks.

Each piece is measured in a fresh interpreter (median of ``repeats`` after a warm-up, so the
optimised-graph cache of :mod:`sct_lesion_classify.runtime.graph_cache` is built), on the bench's
512x512x15 phantom:

- ``interpreter_s``: ``python -c pass``;
- ``imports_s``: the modules the command imports (``cli.classify_lesion`` and the pipeline);
- ``package_checks_s``: :func:`~sct_lesion_classify.pipeline.models.select_models`, i.e. each
  package's card read and validated and its ONNX file's sha256 checked;
- ``sessions_s``: :meth:`ClassificationModels.load`, the five ONNX Runtime sessions (from the cache,
  whose files' own sha256 are checked too);
- ``first_run_s`` / ``second_run_s``: the whole pipeline in process, twice: the difference is what
  the first call of each network costs beyond later calls (memory first touched, kernels prepared).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.phantom_generation import canonical_shape
from bench.pipeline_stages import _median, run_process

SIZE = (512, 512, 15)

_CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import sct_lesion_classify.cli.classify_lesion
from sct_lesion_classify.pipeline.classification import ClassificationModels, ClassificationRequest, run_classification
from sct_lesion_classify.pipeline.models import select_models
from sct_lesion_classify.pipeline.segmentation import SegmentationRequest
t1 = time.perf_counter()
selection = select_models(segment=True, cord_localizer=True)
t2 = time.perf_counter()
models = ClassificationModels.load(selection)
t3 = time.perf_counter()
runs = []
for k in range(2):
    out = Path(sys.argv[2]) / f"run{k}"
    request = ClassificationRequest(segmentation=SegmentationRequest(image_path=Path(sys.argv[1]), output_path=out / "lesion.nii.gz"),
                                    output_path=out / "diagnosis.json")
    start = time.perf_counter()
    run_classification(request, models)
    runs.append(time.perf_counter() - start)
print(json.dumps({"imports_s": t1 - t0, "package_checks_s": t2 - t1, "sessions_s": t3 - t2,
                  "first_run_s": runs[0], "second_run_s": runs[1]}))
"""


def run(repeats: int = 5) -> dict:
    """Median seconds of each piece of a process's start (see the module docstring)."""
    import logging

    from sct_lesion_classify.errors import InputError, ModelError
    from sct_lesion_classify.phantom.dataset import write_subject
    from sct_lesion_classify.phantom.subject import generate_subject
    from sct_lesion_classify.pipeline.models import select_models

    try:
        select_models(segment=True, cord_localizer=True)
    except (ModelError, InputError) as exc:
        return {"skipped": f"no models: {exc}"}
    logging.getLogger("sct_lesion_classify").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_subject(Path(tmp) / "bids", generate_subject(12345, "ependymoma", shape=canonical_shape(SIZE)))
        pieces: dict[str, list[float]] = {}
        for k in range(repeats + 1):
            interpreter, _ = run_process([sys.executable, "-c", "pass"])
            child = subprocess.run([sys.executable, "-c", _CHILD, str(paths["t2w"]), str(Path(tmp) / f"out{k}")],
                                   capture_output=True, text=True, check=True)
            if k == 0:
                continue  # warm-up: builds the optimised-graph cache, fills the page cache
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            figures["interpreter_s"] = interpreter
            for key, value in figures.items():
                pieces.setdefault(key, []).append(value)
    result = {key: _median(values) for key, values in pieces.items()}
    result["first_call_extra_s"] = round(result["first_run_s"] - result["second_run_s"], 4)
    result.update({"subject": "x".join(map(str, SIZE)), "runs": repeats})
    return result

