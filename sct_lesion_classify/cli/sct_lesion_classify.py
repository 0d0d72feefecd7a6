"""``sct_lesion_classify <subcommand>``: data, training, evaluation, cohorts and model packages.

Each subcommand is its own module with ``get_parser()`` and ``main(argv)``; this dispatcher
imports only the one that is asked for, so ``-h`` stays instant.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from sct_lesion_classify.cli.frame import EXIT_USAGE

#: subcommand -> (module, one-line summary). The module defines get_parser() and main(argv).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("sct_lesion_classify.cli.phantom",
                "Generate a synthetic BIDS dataset of sagittal T2w spine MRI with lesions."),
    "insert-lesions": ("sct_lesion_classify.cli.insert_lesions",
                       "Paint synthetic lesions inside the cord of real healthy scans; a BIDS dataset."),
    "evaluate": ("sct_lesion_classify.cli.evaluate",
                 "Evaluate model packages on a BIDS split: Dice, Table 2 metrics with CIs, baseline."),
    "train": ("sct_lesion_classify.cli.train",
              "Train a model family (cord, lesion, the three classifiers) on a BIDS dataset; export it."),
    "calibrate": ("sct_lesion_classify.cli.calibrate",
                  "Refit the classifiers' calibration and fusion on the pipeline's segmented masks."),
    "models": ("sct_lesion_classify.cli.models",
               "List, verify and install model packages (ONNX network + model card)."),
    "batch": ("sct_lesion_classify.cli.batch",
              "Segment and classify every subject of a BIDS dataset (local processes or Dask); one CSV."),
}

PROG = "sct_lesion_classify"


def usage() -> str:
    """The help text listing the subcommands."""
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [
        f"usage: {PROG} <subcommand> [options]",
        "",
        "Intramedullary lesion classification for the Spinal Cord Toolbox: everything beside the",
        "two pipeline commands (sct_deepseg_imlesion, sct_classify_lesion).",
        "",
        "SUBCOMMANDS",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += ["", f"Run '{PROG} <subcommand> -h' for the options of one subcommand."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the subcommand named by the first argument."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv:
        return _usage_error(f"a subcommand is required; choose from {', '.join(SUBCOMMANDS)}")
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        return _usage_error(f"unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)}")
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


def _usage_error(message: str) -> int:
    """As the commands' usage errors (``cli.frame``): the usage line, then one error line; exit 2."""
    print(usage().splitlines()[0], file=sys.stderr)
    print(f"{PROG}: error: {message} (see {PROG} -h)", file=sys.stderr)
    return EXIT_USAGE


def console_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    console_entry()
