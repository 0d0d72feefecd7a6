"""``sct_lesion_classify batch``: segmentation and diagnosis of every subject of a BIDS dataset.

For every subject with a T2w image, the lesion is segmented (or the manual mask of
``derivatives/labels`` is taken with ``--use-manual-lesion``) and classified as by
``sct_classify_lesion``. Outputs go to a BIDS derivative dataset
(``<BIDS>/derivatives/sct_lesion_classify/``) with one row per subject in ``diagnoses.csv``,
rewritten as subjects finish. A rerun skips the subjects whose outputs are complete and valid;
a failing subject is recorded with its error and the others finish. Local worker processes by
default; ``--scheduler`` sends the same jobs to a Dask distributed cluster.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Sequence

from sct_lesion_classify.cli.common import add_segmentation_args
from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_int, run_command

if TYPE_CHECKING:
    from sct_lesion_classify.batch.subject_job import BatchSettings

PROG = "sct_lesion_classify batch"

EXIT_CODES = ("Exit code: 0 when every selected subject has its outputs (status ok or no_lesion); 1 when "
              "at least one subject failed (status 'failed' in diagnoses.csv, with its error), or the "
              "batch failed at run time; 2 for a usage error or an unusable input of the batch itself "
              "(not a BIDS folder, no subject selected, bad option, unreachable scheduler).")


def get_parser() -> SCTArgumentParser:
    """The subcommand's parser."""
    parser = SCTArgumentParser(
        prog=PROG,
        description=" ".join(__doc__.split("\n\n")[1].replace("``", "'").split()) + " " + EXIT_CODES,
    )
    parser.mandatory.add_argument(
        "--bids", "-bids", metavar="<folder>", required=True,
        help="BIDS dataset: sub-<label>/anat/sub-<label>_T2w.nii.gz (manual masks in "
             "derivatives/labels/sub-<label>/anat/, SPEC section 6).")
    opt = parser.optional
    opt.add_argument(
        "-o", "--output", dest="o", metavar="<folder>", default=None,
        help="Output derivative dataset. Default: <BIDS>/derivatives/sct_lesion_classify.")
    opt.add_argument(
        "-j", "--jobs", "-jobs", dest="j", metavar="<int>", type=positive_int, default=1,
        help="Local worker processes (each loads the models once; '-jobs' as in sct_run_batch). "
             "Default: 1.")
    opt.add_argument(
        "--threads", metavar="<int>", type=positive_int, default=None,
        help="ONNX Runtime threads per worker. Default: the usable cores divided by -j (locally), "
             "or a Dask worker's cores divided by its threads.")
    opt.add_argument(
        "--scheduler", metavar="<address>", default=None,
        help="Address of a Dask distributed scheduler (e.g. tcp://10.0.0.5:8786): run the subjects "
             "on its workers instead of local processes (-j is then ignored). The workers need this "
             "package, the models and the dataset at the same paths (shared file system).")
    opt.add_argument(
        "--include", "-include-list", dest="include", metavar="<pattern>", nargs="+", action="extend",
        default=[],
        help="Only subjects matching one of these shell patterns (e.g. 'sub-01*' or '01?'; the "
             "'sub-' prefix is optional; '-include-list sub-01 sub-02' as in sct_run_batch). "
             "Default: every subject with a T2w image.")
    opt.add_argument(
        "--exclude", "-exclude-list", dest="exclude", metavar="<pattern>", nargs="+", action="extend",
        default=[],
        help="Skip the subjects matching one of these shell patterns ('-exclude-list' as in "
             "sct_run_batch).")
    opt.add_argument(
        "-include", dest="include_regex", metavar="<regex>", type=regex, default=None,
        help="As sct_run_batch's -include: only subjects whose folder name (sub-<label>) contains a "
             "match of this regular expression (e.g. '^sub-0[12]'). Combines with --include.")
    opt.add_argument(
        "-exclude", dest="exclude_regex", metavar="<regex>", type=regex, default=None,
        help="As sct_run_batch's -exclude: skip the subjects whose folder name contains a match of "
             "this regular expression. Combines with --exclude.")
    opt.add_argument(
        "--overwrite", action="store_true",
        help="Redo every selected subject (needed after changing segmentation options). Default: skip "
             "those whose outputs are complete and valid (diagnosis JSON valid against its schema, for "
             "the same T2w file, models and kind of lesion mask; lesion mask readable on the T2w grid).")
    opt.add_argument(
        "--use-manual-lesion", action="store_true",
        help="Classify derivatives/labels/sub-<label>/anat/sub-<label>_T2w_lesion-manual.nii.gz "
             "instead of segmenting (a subject without it fails).")
    opt.add_argument(
        "--use-manual-cord", action="store_true",
        help="Take the cord mask from derivatives/labels/.../sub-<label>_T2w_seg-manual.nii.gz (as -s "
             "of the pipeline commands) instead of localizing the cord (a subject without it fails).")
    opt.add_argument(
        "--use-t1c", action="store_true",
        help="Give sub-<label>_ce-gad_T1w.nii.gz, when a subject has one, to the cT1w-aware models (it "
             "must be on the T2w grid). Default: T2w only.")
    add_segmentation_args(parser, cord_mask_option=False)
    parser.misc.add_argument(
        "--qc", "-qc", dest="qc", metavar="<folder>", default=None,
        help="Folder of a QC report with one entry per subject.")
    parser.misc.add_argument(
        "-qc-dataset", metavar="<str>", default=None,
        help="Dataset name shown in the QC report (default: the name of the BIDS folder).")
    parser.add_misc_args()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; returns the exit code (0, 1 or 2, see the help)."""
    return run_command(get_parser(), argv, _run)


def _run(args: argparse.Namespace) -> int:
    import logging
    from collections import Counter

    from sct_lesion_classify.batch.runner import batch_lock, execute, plan_batch, select_cohort
    from sct_lesion_classify.batch.subject_job import resolve_models
    from sct_lesion_classify.batch.table import STATUS_FAILED, STATUS_NO_LESION, STATUS_OK
    from sct_lesion_classify.errors import InputError

    log = logging.getLogger("sct_lesion_classify")
    if args.use_manual_cord and args.cord_method == "sct":
        raise InputError("--use-manual-cord and -cord-method sct are exclusive: the manual mask already "
                         "gives the cord")
    if args.scheduler and "://" not in args.scheduler:
        raise InputError(f"--scheduler {args.scheduler!r}: expected an address such as tcp://host:8786")
    settings = _settings(args)
    cohort = select_cohort(settings.bids_root, args.include, args.exclude, include_regex=args.include_regex,
                           exclude_regex=args.exclude_regex)
    models = resolve_models(settings)
    with batch_lock(settings.output_root):
        plan = plan_batch(settings, cohort, models, overwrite=args.overwrite)
        if args.scheduler:
            where = f"the Dask scheduler {args.scheduler}"
        else:
            where = (f"{max(1, min(args.j, len(plan.jobs)))} local worker process(es), {settings.threads} "
                     "ONNX Runtime thread(s) each")
        log.info("%d subject(s) selected: %d complete already (skipped), %d to process on %s",
                 len(cohort.selected), len(plan.done), len(plan.jobs), where)
        for pid, reason in plan.redo_reasons.items():
            log.info("%s: redone (%s)", pid, reason)
        with _Progress(len(plan.jobs), args.v, args.stage_times) as progress:
            report = execute(plan, jobs=args.j, scheduler=args.scheduler, on_result=progress.on_result)
    statuses = Counter(o.status for o in report.outcomes)
    log.info("%d ok, %d without lesion, %d failed; %d of them were complete already. Table: %s",
             statuses[STATUS_OK], statuses[STATUS_NO_LESION], statuses[STATUS_FAILED], report.n_skipped,
             plan.table_path)
    return 1 if report.n_failed else 0


def regex(text: str) -> str:
    """``argparse`` type: a valid Python regular expression (sct_run_batch's -include / -exclude)."""
    import re

    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"invalid regular expression {text!r}: {exc}") from None
    return text


def _settings(args: argparse.Namespace) -> BatchSettings:
    """The batch's settings: absolute paths, the segmentation options built once, the threads."""
    from pathlib import Path

    from sct_lesion_classify.batch.cohort import default_output_root
    from sct_lesion_classify.batch.subject_job import BatchSettings
    from sct_lesion_classify.cli.common import segmentation_options
    from sct_lesion_classify.runtime.session import usable_cores
    from sct_lesion_classify.pipeline.options import QcOptions

    bids = Path(args.bids).expanduser().resolve()
    threads = args.threads
    if threads is None and not args.scheduler:
        threads = max(1, usable_cores() // args.j)
    return BatchSettings(
        bids_root=bids,
        output_root=Path(args.o).expanduser().resolve() if args.o else default_output_root(bids),
        custom_models=tuple(str(Path(folder).expanduser().resolve()) for folder in args.custom_model),
        use_manual_lesion=args.use_manual_lesion,
        use_manual_cord=args.use_manual_cord,
        use_t1c=args.use_t1c,
        segmentation=segmentation_options(args),
        qc=QcOptions(folder=Path(args.qc).expanduser().resolve() if args.qc else None,
                     dataset=args.qc_dataset or bids.name),
        threads=threads,
        verbosity=args.v,
        command_line=args.command_line,
    )


class _Progress:
    """The progress bar of the subjects (stderr), failures as they happen, and with -v 2 each
    subject's summary and log lines (stdout)."""

    def __init__(self, total: int, verbosity: int, stage_times=None) -> None:
        import sys
        from collections import Counter

        from tqdm import tqdm

        self.verbosity = verbosity
        self.stage_times = stage_times  # cli.frame.StageTimes: the subjects' seconds per stage
        self.counts: Counter[str] = Counter()
        self.bar = tqdm(total=total, desc="batch", unit="subject", file=sys.stderr,
                        disable=verbosity == 0 or not total, dynamic_ncols=True)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()

    def on_result(self, result) -> None:
        """Called with each subject's ``JobResult`` as it finishes."""
        import sys

        from tqdm import tqdm

        from sct_lesion_classify.batch.table import STATUS_FAILED, STATUS_NO_LESION, STATUS_OK

        outcome = result.outcome
        self.counts[outcome.status] += 1
        if self.stage_times is not None:
            self.stage_times.add({("subject total" if stage == "total" else stage): seconds
                                  for stage, seconds in outcome.runtime_s.items()})
        self.bar.set_postfix({"ok": self.counts[STATUS_OK] + self.counts[STATUS_NO_LESION],
                              "failed": self.counts[STATUS_FAILED]}, refresh=False)
        self.bar.update(1)
        if outcome.failed:
            tqdm.write(f"WARNING: {outcome.participant_id} failed: {outcome.error}", file=sys.stderr)
        if self.verbosity >= 2:
            summary = (outcome.status if outcome.most_likely_class is None else
                       f"{outcome.most_likely_class} ({outcome.confidence} confidence)")
            tqdm.write(f"{outcome.participant_id}: {summary} [{result.worker}, "
                       f"{outcome.runtime_s.get('total', 0.0):.1f} s]", file=sys.stdout)
            for line in result.log:
                tqdm.write(f"  {line}", file=sys.stdout)


def console_entry() -> None:
    """Console-script entry point (``python -m sct_lesion_classify.cli.batch``)."""
    raise SystemExit(main())


if __name__ == "__main__":
    console_entry()
