"""ONNX Runtime sessions for model packages, built once and reused.

``create_session`` configures the CPU provider the way a shared machine needs it: ``threads``
intra-op threads (default: the usable cores), one inter-op thread, sequential execution, all
graph optimizations, and no busy-waiting ("spinning") when fewer threads than cores are used
(several workers share the machine). Every session of a process draws its working memory from
one CPU arena (:func:`shared_arena`) instead of one arena each: at 512x512x15 the peak RSS of
``sct_classify_lesion -i`` (five sessions) went from about 1.57 GB to 1.04 GB, in the same time.
The graph ONNX Runtime runs is the package's after :mod:`~sct_lesion_classify.runtime.graph_rewrite`
(so that its convolutions can be fused), and its optimised form is kept in
:mod:`~sct_lesion_classify.runtime.graph_cache` for the next process. :func:`build_concurrently`
creates several sessions side by side, :func:`build_in_background` without waiting for them.
:class:`Predictor` holds a package's session and tensor names and checks every batch against the
card's input contract.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, TypeVar

import numpy as np

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.runtime.graph_cache import CachedGraph, discard, graph_cache_root
from sct_lesion_classify.runtime.graph_rewrite import normalized_graph

if TYPE_CHECKING:  # onnxruntime is imported lazily, when the first session is made
    from concurrent.futures import Future

    import onnxruntime

logger = logging.getLogger(__name__)

_ARENA_LOCK = threading.Lock()
_arena_registered: bool | None = None  # None: not tried yet


def shared_arena(ort: ModuleType) -> bool:
    """Register one CPU arena allocator for every session of this process (once); True if done.

    Sessions created with ``session.use_env_allocators = 1`` then share it, so the memory one
    network freed serves the next instead of each session holding its own peak. Where ONNX
    Runtime refuses the registration, sessions keep their own arenas (same results, more memory).
    """
    global _arena_registered
    with _ARENA_LOCK:
        if _arena_registered is None:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         ort.OrtMemType.DEFAULT)
                # max memory: none; extend strategy 0 (next power of two; 1, same as requested,
                # measured 1.36 GB at 512x512x15); chunk sizes: ONNX Runtime's defaults
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 0, -1, -1))
                _arena_registered = True
            except Exception as exc:  # onnxruntime raises its own exception types
                logger.debug("no shared ONNX Runtime arena (%s); one arena per session", exc)
                _arena_registered = False
        return _arena_registered


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, bounded by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


K = TypeVar("K")
K2 = TypeVar("K2")
T = TypeVar("T")


def build_concurrently(builders: Mapping[K, Callable[[], T]]) -> dict[K, T]:
    """Call every builder (a model's verification or session creation) on up to usable_cores() threads.

    ONNX Runtime releases the GIL while it loads and initialises a session, and hashlib while it
    hashes a file: on the 2-core development machine the five sessions of ``sct_classify_lesion``
    took 0.26 s on two threads against 0.52 s one after the other. Results come back under their
    keys; when builders fail, the error of the first failing key (in ``builders``' order) is
    raised, after all have finished, so that the error a user sees does not depend on timing.
    """
    if len(builders) <= 1:
        return {key: build() for key, build in builders.items()}
    pending = build_in_background(builders)
    pending.wait()
    return dict(pending)  # read in the builders' order: the first failing key's error is raised


def build_in_background(builders: Mapping[K, Callable[[], T]]) -> "Pending[K, T]":
    """Start every builder on up to usable_cores() threads and return at once.

    The builders start in ``builders``' order, so put first what is needed first. Reading a value
    of the result waits for its builder and raises its error, if any. ``sct_classify_lesion``
    builds the classifiers' sessions this way while the image is read and segmented: the second
    core is idle in the single-threaded parts of the pipeline (reading, resampling,
    postprocessing), and that is where the sessions' creation goes.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=max(1, min(len(builders), usable_cores())),
                              thread_name_prefix="sct_lesion_classify-build")
    futures = {key: pool.submit(build) for key, build in builders.items()}
    pool.shutdown(wait=False)  # the threads end when their builders are done
    return Pending(futures)


class Pending(Mapping[K, T]):
    """Values being built in the background (:func:`build_in_background`); a read waits for one.

    A builder's error is raised where its value is read, so a caller that reads the keys in a fixed
    order sees the same error whatever the timing. :meth:`only` gives a view of some keys.
    """

    def __init__(self, futures: Mapping[K, "Future[T]"]) -> None:
        self._futures = dict(futures)

    def __getitem__(self, key: K) -> T:
        return self._futures[key].result()

    def __iter__(self) -> Iterator[K]:
        return iter(self._futures)

    def __contains__(self, key: object) -> bool:  # without waiting for the value
        return key in self._futures

    def __len__(self) -> int:
        return len(self._futures)

    def wait(self) -> None:
        """Wait until every builder has finished (its error, if any, is kept for a read)."""
        from concurrent.futures import wait

        wait(self._futures.values())

    def only(self, keys: Mapping[K, K2]) -> "Pending[K2, T]":
        """The values of ``keys`` (own key -> key in the view), still pending."""
        return Pending({new: self._futures[old] for old, new in keys.items()})


def create_session(package: ModelPackage, *,
                   threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ``onnxruntime.InferenceSession`` on the CPU for ``package``.

    From the verified optimised graph in the cache when there is one; otherwise from the package's
    graph (normalised by ``graph_rewrite.normalized_graph``), saving the optimised graph to the cache.

    Parameters
    ----------
    package
        A loaded (verified) package.
    threads
        Intra-op threads; default :func:`usable_cores`. Below the core count, spinning is off.

    Raises
    ------
    ModelError
        ONNX Runtime cannot load the file.
    """
    import onnxruntime as ort

    cores = usable_cores()
    n_threads = cores if threads is None else int(threads)
    if n_threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    root = graph_cache_root()
    entry = CachedGraph.of(package, root, ort.__version__) if root is not None else None
    session = None
    if entry is not None:
        if entry.verified():
            options = _session_options(ort, n_threads, cores)
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # done before saving
            options.add_session_config_entry("session.load_model_format", "ORT")
            try:
                session = ort.InferenceSession(str(entry.path), sess_options=options,
                                               providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                logger.debug("cached graph %s not loaded (%s): rebuilt from the package", entry.path, exc)
                entry.discard()
    if session is None:
        options = _session_options(ort, n_threads, cores)
        staged = entry.staging_path() if entry is not None else None
        if staged is not None:
            options.optimized_model_filepath = str(staged)
            options.add_session_config_entry("session.save_model_format", "ORT")
        graph = normalized_graph(package.onnx_path)  # None: the file is used as it is
        try:
            session = ort.InferenceSession(str(package.onnx_path) if graph is None else graph,
                                           sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            if staged is not None:
                discard(staged)
            detail = " ".join(str(exc).split())[:300]
            raise ModelError(f"{package.onnx_path}: ONNX Runtime cannot load model package "
                             f"{package.name!r} ({detail})") from None
        if staged is not None:
            entry.commit(staged)
    logger.debug("ONNX Runtime session for %s: %d intra-op threads (%d cores)", package.name,
                 n_threads, cores)
    return session


def _session_options(ort: ModuleType, n_threads: int, cores: int) -> "onnxruntime.SessionOptions":
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if shared_arena(ort):
        options.add_session_config_entry("session.use_env_allocators", "1")
    if n_threads < cores:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@dataclass(frozen=True)
class Predictor:
    """A package's session and tensor names; ``predict`` runs one NCHW batch.

    Build it once per package with :meth:`create` and reuse it for every slice and image.
    """

    package: ModelPackage
    session: onnxruntime.InferenceSession = field(repr=False)
    input_name: str
    output_name: str
    cam_name: str | None = None  # the card's output.cam_tensor (a classifier's CAM), if any

    @property
    def threads(self) -> int:
        """The session's intra-op threads (the pipeline's work around the network uses as many)."""
        return max(1, int(self.session.get_session_options().intra_op_num_threads))

    @classmethod
    def create(cls, package: ModelPackage, *, threads: int | None = None) -> "Predictor":
        """Create the session and check the card's tensor names and channel count against it."""
        session = create_session(package, threads=threads)
        card = package.card
        inputs = {node.name: node for node in session.get_inputs()}
        outputs = {node.name for node in session.get_outputs()}
        if card.input.tensor not in inputs:
            raise ModelError(f"{package.onnx_path}: the card's input tensor {card.input.tensor!r} "
                             f"is not an input of the ONNX graph ({', '.join(inputs)})")
        if card.output.tensor not in outputs:
            raise ModelError(f"{package.onnx_path}: the card's output tensor "
                             f"{card.output.tensor!r} is not an output of the ONNX graph "
                             f"({', '.join(sorted(outputs))})")
        cam = card.output.cam_tensor
        if cam is not None and cam not in outputs:
            raise ModelError(f"{package.onnx_path}: the card's CAM tensor {cam!r} is not an output "
                             f"of the ONNX graph ({', '.join(sorted(outputs))})")
        shape = inputs[card.input.tensor].shape
        if len(shape) != 4:
            raise ModelError(f"{package.onnx_path}: input {card.input.tensor!r} has rank "
                             f"{len(shape)}, the card says NCHW")
        if isinstance(shape[1], int) and shape[1] != card.input.n_channels:
            raise ModelError(f"{package.onnx_path}: the ONNX input has {shape[1]} channels, the "
                             f"card lists {card.input.n_channels}")
        return cls(package=package, session=session, input_name=card.input.tensor,
                   output_name=card.output.tensor, cam_name=cam)

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise ModelError when ``batch`` does not fit the card's input contract."""
        spec = self.package.card.input
        name = self.package.name
        if batch.ndim != 4:
            raise ModelError(f"model {name}: expected an NCHW batch (4 dimensions), got shape "
                             f"{tuple(batch.shape)}")
        if batch.shape[1] != spec.n_channels:
            names = ", ".join(channel.name for channel in spec.channels)
            raise ModelError(f"model {name}: expected {spec.n_channels} input channels "
                             f"({names}), got {batch.shape[1]}")
        height, width = batch.shape[2:]
        if spec.spatial_size is not None and (height, width) != spec.spatial_size:
            raise ModelError(f"model {name}: expected slices of {spec.spatial_size[0]}x"
                             f"{spec.spatial_size[1]}, got {height}x{width}")
        divisor = spec.size_divisible_by
        if height % divisor or width % divisor:
            raise ModelError(f"model {name}: slice size {height}x{width} is not divisible by "
                             f"{divisor}")
        if batch.shape[0] < 1:
            raise ModelError(f"model {name}: empty batch")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on ``batch`` (N, C, H, W) and return its output (float32).

        The input is converted to C-contiguous float32. Raises ModelError for a batch that does
        not match the card (channels, size) or when ONNX Runtime fails.
        """
        (result,) = self._run(batch, [self.output_name])
        return result

    def predict_with_cam(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`predict`, plus the CAM output ``(N, h, w)``, in one network call.

        Raises ModelError when the package has no CAM output (``cam_name`` is None).
        """
        if self.cam_name is None:
            raise ModelError(f"model {self.package.name} has no CAM output; re-export it with "
                             "this version")
        output, cam = self._run(batch, [self.output_name, self.cam_name])
        if cam.ndim != 3 or cam.shape[0] != output.shape[0]:
            raise ModelError(f"model {self.package.name}: CAM output {self.cam_name!r} has shape "
                             f"{cam.shape}, expected (N, h, w) with N = {output.shape[0]}")
        return output, cam

    def _run(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        batch = np.asarray(batch)
        self.check_batch(batch)
        feed = np.ascontiguousarray(batch, dtype=np.float32)
        try:
            results = self.session.run(names, {self.input_name: feed})
        except Exception as exc:  # onnxruntime's own exception types
            detail = " ".join(str(exc).split())[:300]
            raise ModelError(f"model {self.package.name}: inference failed ({detail})") from None
        return [np.asarray(result, dtype=np.float32) for result in results]
