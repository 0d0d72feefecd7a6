"""Run the per-subject jobs of a cohort: local worker processes, or a Dask distributed cluster.

The steps, as the command runs them:

1. :func:`select_cohort`: the subjects of the BIDS folder with a T2w image, filtered by the
   include/exclude patterns (nothing is written yet; errors are ``InputError``);
2. ``subject_job.resolve_models``: the model packages, verified, without sessions;
3. :func:`batch_lock`: one batch at a time per output folder;
4. :func:`plan_batch`: which subjects are complete already (checked,
   ``cohort.check_complete_any_name``, which also accepts the earlier ``_lesionseg`` names;
   their rows are rebuilt from their diagnosis JSON) and which are to run;
5. :func:`execute`: writes ``dataset_description.json`` and the table, runs the jobs and
   rewrites the table (atomically, sorted by subject) after every finished subject, in the
   order they finish; the cohort lesion table (``batch.lesion_table``) is rebuilt with it from
   the subjects' own lesion tables.

Local mode uses a ``ProcessPoolExecutor`` with the ``spawn`` start method (no fork of a process
that holds ONNX Runtime threads) and :func:`subject_job.init_worker` as initializer; at most ``jobs``
subjects are in flight. A worker process that dies (killed, out of memory) takes the subjects it
was running with it: they are recorded as failed, a new pool takes the rest, and a rerun redoes
them. Dask mode submits the same function with the same arguments to ``Client(address)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from sct_lesion_classify.batch.cohort import (
    TABLE_NAME,
    check_complete_any_name,
    display_path,
    remove_stale_temporaries,
    select_subjects,
    subject_outputs,
    write_description,
)
from sct_lesion_classify.batch.lesion_table import CohortLesionTable
from sct_lesion_classify.batch.subject_job import (
    BatchSettings,
    JobResult,
    SubjectJob,
    init_worker,
    run_job,
    subject_models,
)
from sct_lesion_classify.batch.table import (
    SubjectOutcome,
    error_message,
    failed_outcome,
    outcome_from_document,
    read_table,
    write_table,
)
from sct_lesion_classify.errors import InputError, ProcessingError
from sct_lesion_classify.io.bids import BidsSubject, discover_subjects
from sct_lesion_classify.io.lock import exclusive_lock

if TYPE_CHECKING:
    from sct_lesion_classify.pipeline.models import ModelSelection

logger = logging.getLogger(__name__)
LOCK_NAME = ".sct_lesion_classify_batch.lock"


@dataclass(frozen=True)
class Cohort:
    """The subjects of the BIDS folder (``all_ids``) and those selected for this run."""

    selected: tuple[BidsSubject, ...]
    all_ids: frozenset[str]


def select_cohort(bids_root: Path, include: Sequence[str] = (), exclude: Sequence[str] = (), *,
                  include_regex: str | None = None, exclude_regex: str | None = None) -> Cohort:
    """Subjects with a T2w image, filtered by the patterns (``cohort.select_subjects``).

    Raises
    ------
    InputError
        Not a folder, no subject with a T2w image (not a BIDS dataset of this kind), an
        invalid participants.tsv, or no subject left after the patterns.
    """
    subjects = discover_subjects(bids_root)
    if not subjects:
        raise InputError(f"{bids_root}: not a BIDS dataset with T2w images (no "
                         "sub-<label>/anat/sub-<label>_T2w.nii.gz)")
    selected = select_subjects(subjects, include, exclude, include_regex=include_regex,
                               exclude_regex=exclude_regex)
    if not selected:
        regexes = "".join(f" {flag} {regex!r}" for flag, regex in (("-include", include_regex),
                                                                    ("-exclude", exclude_regex)) if regex)
        raise InputError(f"{bids_root}: no subject left after --include {list(include) or '*'} "
                         f"--exclude {list(exclude)}{regexes} ({len(subjects)} subjects with a T2w image)")
    return Cohort(selected=tuple(selected), all_ids=frozenset(s.participant_id for s in subjects))


@contextlib.contextmanager
def batch_lock(output_root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder for the whole batch (created if needed).

    Raises
    ------
    InputError
        Another batch holds the lock (it writes the same table), or the folder cannot be created.
    """
    try:
        output_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{output_root}: cannot create the output folder ({exc.strerror or exc})") from None
    busy = (f"{output_root}: another sct_lesion_classify batch is writing this folder (wait for it to "
            "finish, or choose another output folder)")
    with exclusive_lock(output_root / LOCK_NAME, what="batch output folder", wait=False, busy_message=busy,
                        error=InputError):
        yield


@dataclass(frozen=True)
class BatchPlan:
    """What a run will do.

    Attributes
    ----------
    table_path
        The cohort CSV.
    jobs
        Subjects to process, in participant_id order.
    done
        Rows of the selected subjects whose outputs are complete (rebuilt from their JSON).
    kept_rows
        Rows of the previous table for subjects of the dataset not selected this time.
    redo_reasons
        participant_id -> why outputs that exist were not accepted (for the log).
    """

    settings: BatchSettings
    table_path: Path
    jobs: tuple[SubjectJob, ...]
    done: tuple[SubjectOutcome, ...]
    kept_rows: tuple[dict[str, str], ...] = ()
    redo_reasons: dict[str, str] = field(default_factory=dict)


def plan_batch(settings: BatchSettings, cohort: Cohort, models: ModelSelection, *,
               overwrite: bool = False) -> BatchPlan:
    """Sort the selected subjects into complete (skipped) and to run (all with ``overwrite``)."""
    table_path = settings.output_root / TABLE_NAME
    jobs: list[SubjectJob] = []
    done: list[SubjectOutcome] = []
    reasons: dict[str, str] = {}
    for subject in cohort.selected:
        outputs = subject_outputs(settings.output_root, subject)
        fingerprints = subject_models(models, subject, settings)
        lesion_path = subject.lesion_mask if settings.use_manual_lesion else outputs.lesion_mask
        if not overwrite and lesion_path is not None:
            document, reason, lesion_path = check_complete_any_name(
                subject, outputs, lesion_path=lesion_path,
                lesion_source=settings.lesion_source, models=fingerprints)
            if document is not None:
                done.append(outcome_from_document(
                    subject.participant_id, document,
                    diagnosis_json=display_path(outputs.diagnosis_json, settings.bids_root),
                    lesion_mask=display_path(lesion_path, settings.bids_root)))
                continue
            if outputs.diagnosis_json.exists():
                reasons[subject.participant_id] = reason
                logger.debug("%s: outputs not accepted, redone (%s)", subject.participant_id, reason)
        jobs.append(SubjectJob(subject=subject, outputs=outputs, models=fingerprints))
    selected = {s.participant_id for s in cohort.selected}
    kept = tuple(row for pid, row in sorted(_previous_rows(table_path).items())
                 if pid in cohort.all_ids and pid not in selected)
    return BatchPlan(settings=settings, table_path=table_path, jobs=tuple(jobs), done=tuple(done),
                     kept_rows=kept, redo_reasons=reasons)


def _previous_rows(table_path: Path) -> dict[str, dict[str, str]]:
    if not table_path.is_file():
        return {}
    try:
        return read_table(table_path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("%s: previous table not reused (%s); it is replaced", table_path,
                       " ".join(str(exc).split()))
        return {}


@dataclass(frozen=True)
class BatchReport:
    """Rows of the selected subjects once the run is over (skipped and processed)."""

    outcomes: tuple[SubjectOutcome, ...]
    n_skipped: int

    @property
    def n_failed(self) -> int:
        """Subjects whose status is failed."""
        return sum(o.failed for o in self.outcomes)


def execute(plan: BatchPlan, *, jobs: int = 1, scheduler: str | None = None,
            on_result: Callable[[JobResult], None] | None = None) -> BatchReport:
    """Run the plan; the table is rewritten after every finished subject.

    Parameters
    ----------
    jobs
        Local worker processes (ignored with ``scheduler``).
    scheduler
        Address of a Dask distributed scheduler (``tcp://host:port``); None runs locally.
    on_result
        Called in the calling process with each result, in the order the subjects finish
        (after the table has been rewritten).
    """
    lesions = CohortLesionTable(plan.settings.output_root)
    remove_stale_temporaries(plan.settings.output_root, ("dataset_description.json", TABLE_NAME, lesions.path.name))
    write_description(plan.settings.output_root)
    rows: dict[str, dict[str, str]] = {row["participant_id"]: row for row in plan.kept_rows}
    rows.update({outcome.participant_id: outcome.to_row() for outcome in plan.done})
    write_table(plan.table_path, rows.values())
    for participant_id, row in rows.items():
        lesions.update(participant_id, row["status"])
    lesions.write()
    finished: list[SubjectOutcome] = list(plan.done)

    def finish(result: JobResult) -> None:
        finished.append(result.outcome)
        rows[result.outcome.participant_id] = result.outcome.to_row()
        write_table(plan.table_path, rows.values())
        lesions.update(result.outcome.participant_id, result.outcome.status)
        lesions.write()
        if on_result is not None:
            on_result(result)

    if plan.jobs:
        if scheduler:
            _run_dask(plan, scheduler, finish)
        else:
            _run_local(plan, jobs, finish)
    order = {s: i for i, s in enumerate(sorted(o.participant_id for o in finished))}
    return BatchReport(outcomes=tuple(sorted(finished, key=lambda o: order[o.participant_id])),
                       n_skipped=len(plan.done))


def _failure(job: SubjectJob, message: str) -> JobResult:
    return JobResult(outcome=failed_outcome(job.participant_id, message, runtime_s=None,
                                             models=[m.label for m in job.models]))


def _run_local(plan: BatchPlan, workers: int, finish: Callable[[JobResult], None]) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    settings = plan.settings
    workers = max(1, min(int(workers), len(plan.jobs)))
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                                   initargs=(settings,))

    pending = deque(plan.jobs)
    in_flight: dict = {}
    pool = new_pool()
    clean_exit = False
    try:
        while pending or in_flight:
            while pending and len(in_flight) < workers:
                job = pending.popleft()
                in_flight[pool.submit(run_job, job, settings)] = job
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            broken = False
            for future in sorted(done, key=lambda f: in_flight[f].participant_id):
                job = in_flight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    result = _failure(job, "the worker process died while processing this subject "
                                            "(killed, or out of memory)")
                except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                    result = _failure(job, error_message(exc))
                finish(result)
            if broken:
                for future, job in list(in_flight.items()):  # the rest of the dead pool's work
                    in_flight.pop(future)
                    pending.appendleft(job)
                pool.shutdown(wait=False, cancel_futures=True)
                logger.warning("a worker process died; starting new worker processes")
                pool = new_pool()
        clean_exit = True
    finally:
        pool.shutdown(wait=clean_exit, cancel_futures=True)


def _run_dask(plan: BatchPlan, address: str, finish: Callable[[JobResult], None]) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise InputError("--scheduler needs Dask distributed: pip install 'dask[distributed]' "
                         "(or the package's 'distributed' extra)") from None
    settings = plan.settings
    try:
        client = Client(address, set_as_default=False, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"--scheduler {address}: cannot connect to the Dask scheduler "
                         f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
    token = uuid.uuid4().hex[:8]
    try:
        if settings.threads is None:
            settings = dataclasses.replace(settings, jobs_per_host=_jobs_per_host(client))
        futures = {client.submit(run_job, job, settings, pure=False,
                                 key=f"sct_lesion_classify-{job.participant_id}-{token}"): job
                   for job in plan.jobs}
        logger.debug("%d jobs submitted to %s", len(futures), address)
        for future in as_completed(futures, loop=client.loop):
            job = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a missing package on a worker...
                result = _failure(job, error_message(exc))
            finish(result)
            future.release()
    except (OSError, TimeoutError) as exc:
        raise ProcessingError(f"--scheduler {address}: lost the Dask scheduler "
                              f"({' '.join(str(exc).split()) or type(exc).__name__}); finished "
                              "subjects are in the table, rerun to finish the rest") from None
    finally:
        client.close()


def _jobs_per_host(client) -> tuple[tuple[str, int], ...]:
    """Threads of the Dask workers of each host (jobs that run at once there)."""
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker (some versions default to 5)
    except TypeError:  # versions without the argument list every worker
        info = client.scheduler_info()
    per_host: dict[str, int] = {}
    for worker in info.get("workers", {}).values():
        host = worker.get("host")
        if host:
            per_host[host] = per_host.get(host, 0) + int(worker.get("nthreads") or 1)
    return tuple(sorted(per_host.items()))
