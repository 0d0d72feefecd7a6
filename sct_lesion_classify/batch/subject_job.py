"""The per-subject job of ``sct_lesion_classify batch``, and the models each worker keeps.

:func:`run_job` is the one function that both executors run, a local worker process and a
Dask worker: it segments the lesion (or takes the manual mask), classifies it with the code of
``sct_classify_lesion`` (``pipeline.classification``) and returns a :class:`JobResult`; it never
raises. The loaded models are cached per process (:func:`worker_models`): a worker builds its
ONNX Runtime sessions once, at its first subject (or in :func:`init_worker`), and reuses them.

Each session gets ``threads`` intra-op threads: :attr:`BatchSettings.threads` when set (the local
runner sets ``max(1, cores // workers)``), else the usable cores of the process divided by the
jobs that run at once on its machine (on a Dask worker: the ``nthreads`` of every worker of
that host, :attr:`BatchSettings.jobs_per_host`, as the scheduler reported them when the batch
started), so that concurrent workers do not oversubscribe the cores.

This module imports only the standard library and light modules of the package at import time,
so that :func:`init_worker` can set the thread counts of numerical libraries before they load.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sct_lesion_classify.batch.cohort import SubjectOutputs, display_path, remove_stale_temporaries
from sct_lesion_classify.batch.table import (
    SubjectOutcome,
    error_message,
    failed_outcome,
    outcome_from_document,
)
from sct_lesion_classify.io.bids import BidsSubject
from sct_lesion_classify.pipeline.options import QcOptions, SegmentationOptions
from sct_lesion_classify.pipeline.outputs import OutputNames

if TYPE_CHECKING:
    from sct_lesion_classify.pipeline.classification import ClassificationModels, ClassificationRequest
    from sct_lesion_classify.pipeline.models import ModelFingerprint, ModelSelection

logger = logging.getLogger(__name__)
PACKAGE_LOGGER = "sct_lesion_classify"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class BatchSettings:
    """Everything a worker needs to know about the batch, the same for every subject.

    Paths are absolute: a Dask worker may run in another folder, or on another machine that
    sees the same file system. ``segmentation`` and ``qc`` are the options of the pipeline
    commands, built once (``cli.common.segmentation_options``); ``qc.subject`` is set per subject.
    """

    bids_root: Path
    output_root: Path
    custom_models: tuple[str, ...] = ()
    use_manual_lesion: bool = False
    use_manual_cord: bool = False
    use_t1c: bool = False
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)
    qc: QcOptions = field(default_factory=QcOptions)
    threads: int | None = None
    jobs_per_host: tuple[tuple[str, int], ...] = ()
    verbosity: int = 1
    command_line: str = ""

    @property
    def lesion_source(self) -> str:
        """``"user"`` with ``--use-manual-lesion``, else ``"automatic"``."""
        return "user" if self.use_manual_lesion else "automatic"

    @property
    def needs_cord_localizer(self) -> bool:
        """Whether the bundled cord localizer runs (never with the manual lesion masks)."""
        return not self.use_manual_lesion and self.segmentation.needs_builtin_cord(
            cord_mask_given=self.use_manual_cord)

    def uses_t1c(self, subject: BidsSubject) -> bool:
        """Whether ``subject``'s cT1w image goes to the classifiers (``--use-t1c`` and it has one)."""
        return self.use_t1c and subject.t1c is not None


def resolve_models(settings: BatchSettings) -> ModelSelection:
    """Resolve and verify (sha256) the packages of the batch, without building sessions.

    Raises
    ------
    InputError, ModelError
        A ``-custom-model`` folder that is invalid, or a package that is missing or fails
        verification.
    """
    from sct_lesion_classify.pipeline.models import select_models

    return select_models(settings.custom_models, segment=not settings.use_manual_lesion,
                         cord_localizer=settings.needs_cord_localizer, t1c=settings.use_t1c)


def subject_models(selection: ModelSelection, subject: BidsSubject,
                   settings: BatchSettings) -> tuple[ModelFingerprint, ...]:
    """The packages the diagnosis JSON of ``subject`` lists, in its order."""
    return selection.fingerprints(with_t1c=settings.uses_t1c(subject))


@dataclass(frozen=True)
class SubjectJob:
    """One subject to process: its files, where its outputs go, and the models it must use."""

    subject: BidsSubject
    outputs: SubjectOutputs
    models: tuple[ModelFingerprint, ...]

    @property
    def participant_id(self) -> str:
        """``sub-<label>``."""
        return self.subject.participant_id


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_job` returns: the subject's row, its log lines and where it ran."""

    outcome: SubjectOutcome
    log: tuple[str, ...] = ()
    worker: str = ""


# ------------------------------------------------------------------------------------ worker
_PREPARED = False
_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple, object] = {}
_STARTUP_LOG: list[str] = []


def init_worker(settings: BatchSettings) -> None:
    """Initializer of a local worker process: thread counts, logging, then the models.

    A failure to load the models is not raised here (it would break the pool): the first job
    meets it again and records it as that subject's error.
    """
    threads = session_threads(settings)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    _prepare_process(settings.verbosity)
    with _CapturedLogs(settings.verbosity) as captured:
        try:
            worker_models(settings)
        except Exception:  # noqa: BLE001 - reported by run_job
            pass
    _STARTUP_LOG.extend(captured.lines)  # shown with the log of this worker's first subject


def session_threads(settings: BatchSettings) -> int:
    """Intra-op threads of each ONNX Runtime session in this process (module docstring)."""
    if settings.threads is not None:
        return max(1, int(settings.threads))
    from sct_lesion_classify.runtime.session import usable_cores

    return max(1, usable_cores() // _concurrent_jobs(settings))


def _concurrent_jobs(settings: BatchSettings) -> int:
    """Jobs that run at once on this machine: on a Dask worker, the threads of every worker of
    its host (``settings.jobs_per_host``, else its own ``nthreads``); elsewhere 1."""
    if "distributed" not in sys.modules:
        return 1
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        worker = get_worker()
        host = get_address_host(worker.address)
    except (ImportError, ValueError):
        return 1
    state = getattr(worker, "state", worker)
    own = max(1, int(getattr(state, "nthreads", 1) or 1))
    return max(own, int(dict(settings.jobs_per_host).get(host, own)))


def worker_models(settings: BatchSettings) -> ClassificationModels:
    """The ``ClassificationModels`` of this process for ``settings``, loaded once and reused."""
    threads = session_threads(settings)
    key = (settings.custom_models, settings.use_manual_lesion, settings.needs_cord_localizer,
           settings.use_t1c, threads)
    with _CACHE_LOCK:
        models = _CACHE.get(key)
        if models is None:
            from sct_lesion_classify.pipeline.classification import ClassificationModels

            start = time.perf_counter()
            models = ClassificationModels.load(resolve_models(settings), threads=threads)
            _CACHE.clear()
            _CACHE[key] = models
            logger.debug("models loaded in process %d in %.2f s (%d intra-op threads per session)",
                         os.getpid(), time.perf_counter() - start, threads)
        return models


def _prepare_process(verbosity: int) -> None:
    """Once per process: the package's log records are captured per job, not printed.

    In a process where the package logger already prints (the command's own process), nothing
    changes.
    """
    global _PREPARED
    if _PREPARED:
        return
    _PREPARED = True
    package_logger = logging.getLogger(PACKAGE_LOGGER)
    if not package_logger.handlers:
        package_logger.addHandler(logging.NullHandler())
        package_logger.propagate = False
        package_logger.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)


class _JobLogHandler(logging.Handler):
    """Keeps the log lines of one job (records of the thread that runs it)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.thread_id = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not fail the subject
            message = str(record.msg)
        prefix = f"{record.levelname}: " if record.levelno >= logging.WARNING else ""
        self.lines.append(prefix + message)
        if record.exc_info and record.levelno <= logging.DEBUG:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


class _CapturedLogs:
    def __init__(self, verbosity: int) -> None:
        self.handler = _JobLogHandler(logging.DEBUG if verbosity >= 2 else logging.INFO)

    def __enter__(self) -> _JobLogHandler:
        logging.getLogger(PACKAGE_LOGGER).addHandler(self.handler)
        return self.handler

    def __exit__(self, *exc_info) -> None:
        logging.getLogger(PACKAGE_LOGGER).removeHandler(self.handler)


def run_job(job: SubjectJob, settings: BatchSettings) -> JobResult:
    """Segment and classify one subject; the result holds its CSV row (never raises).

    A failure of any kind (the package's errors, an unexpected exception, a memory error) is
    the row's one-line error; the subject's diagnosis JSON, if an earlier run left one, is
    removed so that the files agree with the table.
    """
    _prepare_process(settings.verbosity)
    start = time.perf_counter()
    with _CapturedLogs(settings.verbosity) as captured:
        try:
            outcome = _process(job, settings)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the subject's row
            logger.debug("%s failed", job.participant_id, exc_info=True)
            _remove_stale_diagnosis(job.outputs)
            outcome = failed_outcome(job.participant_id, error_message(exc),
                                     runtime_s=time.perf_counter() - start,
                                     models=[m.label for m in job.models])
    with _CACHE_LOCK:
        startup = list(_STARTUP_LOG)
        _STARTUP_LOG.clear()
    return JobResult(outcome=outcome, log=tuple(startup + captured.lines),
                      worker=f"{socket.gethostname()}:{os.getpid()}")


def _process(job: SubjectJob, settings: BatchSettings) -> SubjectOutcome:
    from sct_lesion_classify.pipeline.classification import run_classification

    _check_manual_masks(job.subject, settings)
    models = worker_models(settings)
    used = subject_models(models.selection, job.subject, settings)
    if used != job.models:
        from sct_lesion_classify.errors import ModelError

        raise ModelError(
            "this worker resolved other model packages ("
            + ", ".join(m.label for m in used) + ") than the machine that planned the batch ("
            + ", ".join(m.label for m in job.models) + "): install the same packages on every "
            "worker, or pass -custom-model folders on a shared file system")
    outputs = job.outputs
    outputs.folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(outputs.folder, (outputs.diagnosis_json.name, outputs.lesion_mask.name,
                                              outputs.sidecar.name, *OutputNames.of(job.subject.t2w).lesion_analysis))
    result = run_classification(_request(job, settings), models)
    return outcome_from_document(job.participant_id, result.document.to_json(),
                                 diagnosis_json=display_path(result.json_path, settings.bids_root),
                                 lesion_mask=display_path(result.lesion_path, settings.bids_root))


def _check_manual_masks(subject: BidsSubject, settings: BatchSettings) -> None:
    """The manual masks that ``--use-manual-lesion`` / ``--use-manual-cord`` need exist."""
    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.io.bids import subject_paths

    expected = subject_paths(settings.bids_root, subject.participant_id)
    if settings.use_manual_lesion and subject.lesion_mask is None:
        raise InputError(f"{expected['lesion_mask']}: manual lesion mask not found (--use-manual-lesion)")
    if settings.use_manual_cord and subject.cord_mask is None:
        raise InputError(f"{expected['cord_mask']}: manual cord mask not found (--use-manual-cord)")


def _request(job: SubjectJob, settings: BatchSettings) -> ClassificationRequest:
    """The ``sct_classify_lesion`` request of one subject, with the batch's options."""
    from sct_lesion_classify.pipeline.classification import ClassificationRequest
    from sct_lesion_classify.pipeline.segmentation import SegmentationRequest

    subject, pid = job.subject, job.participant_id
    segmentation = SegmentationRequest(
        image_path=subject.t2w,
        output_path=job.outputs.lesion_mask,
        cord_mask_path=subject.cord_mask if settings.use_manual_cord else None,
        options=settings.segmentation,
        qc=replace(settings.qc, subject=pid),
        command_line=f"{settings.command_line} [{pid}]",
    )
    return ClassificationRequest(
        segmentation=segmentation,
        lesion_path=subject.lesion_mask if settings.use_manual_lesion else None,
        t1c_path=subject.t1c if settings.use_t1c else None,
        output_path=job.outputs.diagnosis_json,
    )


def _remove_stale_diagnosis(outputs: SubjectOutputs) -> None:
    try:
        outputs.diagnosis_json.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("%s: could not remove the diagnosis JSON of the failed subject (%s)",
                       outputs.diagnosis_json, exc.strerror or exc)

