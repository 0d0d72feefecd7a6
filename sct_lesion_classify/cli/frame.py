"""The command frame shared by every command (SCT conventions, SPEC section 2).

Each command module defines ``get_parser()`` (built with :class:`SCTArgumentParser`) and
``main(argv=None) -> int`` that calls :func:`run_command`. This module imports only the standard
library, so ``-h`` answers without loading numpy, nibabel or onnxruntime.

Exit codes: 0 success; 2 usage error or unusable input; 1 failure at run time. Errors are printed
as one line, ``<command>: error: <message>``; the traceback only with ``-v 2``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import traceback
from typing import Callable, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Raised by the parser instead of exiting, so that ``main`` returns the exit code."""


class SCTArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser with SCT's groups (MANDATORY / OPTIONAL / MISC) and behaviour.

    ``-h`` lives in the MISC group with ``-v`` and ``-r``; parsing errors raise
    :class:`UsageError` (a one-line message) instead of printing usage and exiting.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", SmartFormatter)
        kwargs.setdefault("add_help", False)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.mandatory = self.add_argument_group("MANDATORY ARGUMENTS")
        self.optional = self.add_argument_group("OPTIONAL ARGUMENTS")
        self.misc = self.add_argument_group("MISC ARGUMENTS")

    def add_misc_args(self, *, remove_temp: bool = True) -> None:
        """Add ``-h``, ``-v`` and (by default) ``-r`` to the MISC group."""
        self.misc.add_argument("-h", "--help", action="help", help="Show this help message and exit.")
        self.misc.add_argument(
            "-v", metavar="<int>", type=int, choices=(0, 1, 2), default=1,
            help="Verbosity. 0: only warnings and errors, 1: basic (default), 2: extended "
                 "(debug messages, and the traceback of an error).")
        if remove_temp:
            self.misc.add_argument(
                "-r", metavar="<int>", type=int, choices=(0, 1), default=1,
                help="Remove temporary files. 0: keep them (their folder is logged), 1: remove (default).")

    def add_qc_args(self) -> None:
        """Add SCT's ``-qc``, ``-qc-dataset`` and ``-qc-subject`` to the MISC group."""
        self.misc.add_argument(
            "-qc", metavar="<folder>", default=None,
            help="Folder of the QC report: an HTML page (index.html) that lists every entry "
                 "written there, with the pictures of this run.")
        self.misc.add_argument(
            "-qc-dataset", metavar="<str>", default=None,
            help="Dataset name shown in the QC report (default: the BIDS dataset the input is in, if any).")
        self.misc.add_argument(
            "-qc-subject", metavar="<str>", default=None,
            help="Subject name shown in the QC report (default: the BIDS subject of the input, if any).")

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class SmartFormatter(argparse.HelpFormatter):
    """Help formatter that keeps line breaks in help texts that start with ``R|`` (as SCT does)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_help_position", 34)
        kwargs.setdefault("width", 100)
        super().__init__(*args, **kwargs)

    def _split_lines(self, text: str, width: int) -> list[str]:
        if text.startswith("R|"):
            lines: list[str] = []
            for line in text[2:].splitlines():
                lines.extend(super()._split_lines(line, width) or [""])
            return lines
        return super()._split_lines(text, width)


def positive_float(text: str) -> float:
    """``argparse`` type: a finite float > 0."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """``argparse`` type: a finite float >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """``argparse`` type: a float in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def setup_logging(verbosity: int) -> None:
    """Route the package's log records to the terminal as SCT does.

    ``-v 0``: warnings and errors; ``-v 1``: information; ``-v 2``: debug. Information goes to
    stdout, warnings and errors to stderr.
    """
    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[verbosity]
    package_logger = logging.getLogger("sct_lesion_classify")
    for handler in list(package_logger.handlers):
        if getattr(handler, "_sct_lesion_classify", False):
            package_logger.removeHandler(handler)
    info = logging.StreamHandler(sys.stdout)
    info.addFilter(lambda record: record.levelno < logging.WARNING)
    warn = logging.StreamHandler(sys.stderr)
    warn.setLevel(logging.WARNING)
    warn.setFormatter(logging.Formatter("WARNING: %(message)s"))
    for handler in (info, warn):
        handler._sct_lesion_classify = True  # type: ignore[attr-defined]
        package_logger.addHandler(handler)
    package_logger.setLevel(level)
    package_logger.propagate = False


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], int | None],
) -> int:
    """Parse ``argv``, run ``body(args)`` and turn the outcome into an exit code.

    ``args.command_line`` holds the command line (for provenance). ``body`` returns an exit
    code (``None`` means 0) or raises one of the package's errors
    (``errors.LesionClassifyError``), whose ``exit_code`` is returned after a one-line message.
    Any other exception is a failure (1) with a one-line message; ``-v 2`` adds the traceback.
    """
    prog = parser.prog
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _print_error(prog, str(exc), hint=f"see {prog} -h")
        return EXIT_USAGE
    except SystemExit as exc:  # -h / --help
        return int(exc.code or 0)
    args.command_line = " ".join([prog, *map(shlex.quote, argv)])
    verbosity = getattr(args, "v", 1)
    setup_logging(verbosity)
    from sct_lesion_classify.errors import LesionClassifyError  # light module

    start = time.perf_counter()
    try:
        code = body(args)
    except LesionClassifyError as exc:
        if verbosity >= 2:
            traceback.print_exc()
        _print_error(prog, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _print_error(prog, "interrupted")
        return 130
    except MemoryError:
        _print_error(prog, "out of memory")
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the frame is the last line of defence
        if verbosity >= 2:
            traceback.print_exc()
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _print_error(prog, f"unexpected failure: {type(exc).__name__}: {detail}".rstrip(": ")
                     + ("" if verbosity >= 2 else " (run with -v 2 for the traceback)"))
        return EXIT_FAILURE
    logging.getLogger("sct_lesion_classify").debug("%s finished in %.2f s", prog,
                                                   time.perf_counter() - start)
    return EXIT_OK if code is None else int(code)


def _print_error(prog: str, message: str, hint: str | None = None) -> None:
    line = " ".join(message.split())  # one line, whatever the message held
    if hint:
        line += f" ({hint})"
    print(f"{prog}: error: {line}", file=sys.stderr)
