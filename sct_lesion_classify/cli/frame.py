"""The command frame shared by every command (SCT conventions, SPEC section 2).

Each command module defines ``get_parser()`` (built with :class:`SCTArgumentParser`) and
``main(argv=None) -> int`` that calls :func:`run_command`. This module imports only the standard
library, so ``-h`` answers without loading numpy, nibabel or onnxruntime.

Exit codes: 0 success; 2 usage error or unusable input; 1 failure at run time. Errors are printed
as one line, ``<command>: error: <message>``; the traceback only with ``-v 2``. A usage error (a
bad command line, or none at all) prints the command's usage line first, as SCT's commands do
(SCT's ``test_cli.py`` checks exit code 2 and "usage" on stderr for a call without arguments).

SCT's hidden developer flags are accepted (:meth:`SCTArgumentParser.add_misc_args`, not listed by
``-h``): ``-profile-time [<file>]`` logs the seconds per pipeline stage at the end (the command's
body records them in ``args.stage_times``, a :class:`StageTimes`), ``-trace-memory [<folder>]``
logs the peak memory (``ru_maxrss`` of the process and of its children, and the peak of Python's
allocations traced by ``tracemalloc``, as SCT's own ``-trace-memory`` does).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Mapping, NoReturn, Sequence

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
        """Add ``-h``, ``-v``, (by default) ``-r``, and SCT's hidden ``-profile-time`` and ``-trace-memory``.

        The two hidden flags take an optional value, as in SCT: ``-profile-time <file>`` also
        writes the time table to that file, ``-trace-memory <folder>`` also writes
        ``<folder>/peak_memory.txt``. Without a value they only log. Absent: ``None``; given
        without a value: ``""``.
        """
        self.misc.add_argument("-h", "--help", action="help", help="Show this help message and exit.")
        self.misc.add_argument(
            "-v", metavar="<int>", type=int, choices=(0, 1, 2), default=1,
            help="Verbosity. 0: only warnings and errors, 1: basic (default), 2: extended "
                 "(debug messages, and the traceback of an error).")
        self.misc.add_argument("-profile-time", dest="profile_time", metavar="<file>", nargs="?",
                               const="", default=None, help=argparse.SUPPRESS)
        self.misc.add_argument("-trace-memory", dest="trace_memory", metavar="<folder>", nargs="?",
                               const="", default=None, help=argparse.SUPPRESS)
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

    def usage_line(self) -> str:
        """One line: ``usage: <prog> <required arguments> [options]`` (the full usage is in ``-h``)."""
        parts: list[str] = []
        grouped: set[int] = set()
        for group in self._mutually_exclusive_groups:
            if group.required:
                parts.append("(" + " | ".join(_usage_of(a) for a in group._group_actions) + ")")
                grouped.update(id(a) for a in group._group_actions)
        parts += [_usage_of(a) for a in self._actions if a.required and id(a) not in grouped]
        return " ".join(["usage:", self.prog, *parts, "[options]"])


def _usage_of(action: argparse.Action) -> str:
    """``-i <file>`` for an option, ``{list,verify}`` (its choices) or its metavar for a positional."""
    if action.option_strings:
        if action.nargs == 0:
            return action.option_strings[0]
        return f"{action.option_strings[0]} {action.metavar or action.dest.upper()}"
    if action.metavar:
        return str(action.metavar)
    if action.choices:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest


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


class StageTimes:
    """Seconds per pipeline stage, summed over the images of one run (for ``-profile-time``).

    A command's body adds the ``runtime_s`` its pipeline measured (``args.stage_times.add``);
    the frame logs the table at the end when ``-profile-time`` is given.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, runtime_s: Mapping[str, float]) -> None:
        """Add one image's (or subject's) seconds per stage."""
        for stage, seconds in runtime_s.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)
            self.counts[stage] = self.counts.get(stage, 0) + 1

    def table(self, wall_s: float) -> str:
        """The time table: stage, seconds, how many times it ran, share of the wall-clock time."""
        width = max([len("total (wall clock)")] + [len(stage) for stage in self.seconds])
        lines = ["Time profile (-profile-time):",
                 f"  {'stage':<{width}}  {'seconds':>9}  {'runs':>5}  {'share':>6}"]
        for stage, seconds in self.seconds.items():
            share = f"{100 * seconds / wall_s:5.1f}%" if wall_s > 0 else "-"
            lines.append(f"  {stage:<{width}}  {seconds:9.3f}  {self.counts[stage]:5d}  {share:>6}")
        if not self.seconds:
            lines.append("  (no stage recorded)")
        lines.append(f"  {'total (wall clock)':<{width}}  {wall_s:9.3f}")
        return "\n".join(lines)


def peak_memory_report() -> str:
    """Peak memory of this run: resident set of the process and of its children, traced Python peak."""
    import resource
    import tracemalloc

    # ru_maxrss is in KiB on Linux, in bytes on macOS
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    lines = ["Peak memory (-trace-memory):",
             f"  resident set, this process:             {_mib(own)}"]
    if children > 0:
        lines.append(f"  resident set, largest child process:    {_mib(children)}")
    if tracemalloc.is_tracing():
        lines.append(f"  Python allocations (tracemalloc peak):  {_mib(tracemalloc.get_traced_memory()[1])}")
    return "\n".join(lines)


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2 ** 20:10.1f} MiB"


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
        print_usage_error(parser, str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # -h / --help
        return int(exc.code or 0)
    args.command_line = " ".join([prog, *map(shlex.quote, argv)])
    args.stage_times = StageTimes()
    verbosity = getattr(args, "v", 1)
    setup_logging(verbosity)
    from sct_lesion_classify.errors import LesionClassifyError  # light module

    trace_memory = getattr(args, "trace_memory", None)
    if trace_memory is not None:
        import tracemalloc

        tracemalloc.start()
    start = time.perf_counter()
    try:
        code = _run_body(body, args, start)
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


def exit_without_teardown(code: int) -> NoReturn:
    """End a one-image command's process with ``code``, skipping the interpreter's teardown.

    By the time a command's ``main`` returns, every output is written, closed and fsynced (the
    atomic writers of ``io.atomic`` and ``io.image``) and no thread is working. What the
    interpreter would still do is free memory: ONNX Runtime's sessions, arenas and thread pools,
    then every module. At 512x512x15 that took 0.12-0.15 s of a 2.8 s ``sct_classify_lesion``.
    So the console entry points of ``sct_classify_lesion`` and ``sct_deepseg_imlesion`` flush
    logging and the standard streams, then leave with ``os._exit``. ``main(argv)``, which the
    tests and scripts call in process, returns as before; the cohort command (Dask workers,
    whose clean-up runs at exit) does not use this.
    """
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)


def _run_body(body: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
              start: float) -> int | None:
    """``body(args)``, then (also when it raises) the ``-profile-time`` / ``-trace-memory`` reports."""
    try:
        return body(args)
    finally:
        _profile_reports(args, time.perf_counter() - start)


def _profile_reports(args: argparse.Namespace, wall_s: float) -> None:
    """Log (and with a path, write) the time table and the peak memory, when asked for."""
    log = logging.getLogger("sct_lesion_classify")
    profile_time = getattr(args, "profile_time", None)
    trace_memory = getattr(args, "trace_memory", None)
    if profile_time is not None:
        table = args.stage_times.table(wall_s)
        log.info(table)
        if profile_time:
            _write_report(Path(profile_time), table)
    if trace_memory is not None:
        import tracemalloc

        report = peak_memory_report()
        tracemalloc.stop()
        log.info(report)
        if trace_memory:
            _write_report(Path(trace_memory) / "peak_memory.txt", report)


def _write_report(path: Path, text: str) -> None:
    """Write a profiling report; a failure is a warning, not the command's failure."""
    from sct_lesion_classify.io.atomic import write_text_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text + "\n")
    except Exception as exc:  # noqa: BLE001 - a report must not fail the command
        logging.getLogger("sct_lesion_classify").warning("%s: profiling report not written (%s)", path,
                                                        " ".join(str(exc).split()))


def print_usage_error(parser: argparse.ArgumentParser, message: str) -> None:
    """SCT's usage error on stderr: the usage line, then ``<prog>: error: <message> (see <prog> -h)``."""
    usage = parser.usage_line() if isinstance(parser, SCTArgumentParser) else parser.format_usage().strip()
    print(usage, file=sys.stderr)
    _print_error(parser.prog, message, hint=f"see {parser.prog} -h")


def _print_error(prog: str, message: str, hint: str | None = None) -> None:
    line = " ".join(message.split())  # one line, whatever the message held
    if hint:
        line += f" ({hint})"
    print(f"{prog}: error: {line}", file=sys.stderr)
