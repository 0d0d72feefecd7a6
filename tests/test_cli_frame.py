"""The shared command frame: SCT parser groups, exit codes, one-line errors, lazy imports."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from sct_lesion_classify.cli import sct_lesion_classify as dispatcher
from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_float, probability, run_command
from sct_lesion_classify.errors import InputError, ProcessingError


def make_parser() -> SCTArgumentParser:
    parser = SCTArgumentParser(prog="sct_dummy", description="A dummy command.")
    parser.mandatory.add_argument("-i", metavar="<file>", required=True, help="Input.")
    parser.optional.add_argument("-thr", type=probability, default=0.5, help="Threshold.")
    parser.optional.add_argument("-size", type=positive_float, default=1.0, help="Size.")
    parser.add_qc_args()
    parser.add_misc_args()
    return parser


def run(argv, body=lambda args: 0):
    return run_command(make_parser(), argv, body)


def test_help_shows_sct_groups_and_exits_0(capsys):
    assert run(["-h"]) == 0
    out = capsys.readouterr().out
    for group in ("MANDATORY ARGUMENTS", "OPTIONAL ARGUMENTS", "MISC ARGUMENTS"):
        assert group in out
    for flag in ("-i", "-thr", "-qc", "-qc-dataset", "-qc-subject", "-v", "-r", "-h"):
        assert f"  {flag} " in out or f"  {flag}," in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "the following arguments are required: -i"),
        (["-i", "x", "-bogus"], "unrecognized arguments: -bogus"),
        (["-i", "x", "-thr", "abc"], "not a number: 'abc'"),
        (["-i", "x", "-thr", "1.5"], "must be in [0, 1]"),
        (["-i", "x", "-size", "-2"], "must be > 0"),
        (["-i", "x", "-size", "nan"], "not a finite number"),
        (["-i", "x", "-v", "7"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_line_then_one_error_line(capsys, argv, needle):
    assert run(argv) == 2
    usage, error = capsys.readouterr().err.splitlines()
    assert usage == "usage: sct_dummy -i <file> [options]"
    assert error.startswith("sct_dummy: error: ") and error.endswith("(see sct_dummy -h)")
    assert needle in error


def test_package_errors_map_to_their_exit_codes(capsys):
    def bad_input(args):
        raise InputError("in.nii.gz: T2w image is empty")

    def failure(args):
        raise ProcessingError("out.nii.gz: cannot write")

    assert run(["-i", "x"], bad_input) == 2
    assert capsys.readouterr().err == "sct_dummy: error: in.nii.gz: T2w image is empty\n"
    assert run(["-i", "x"], failure) == 1
    assert "cannot write" in capsys.readouterr().err


def test_unexpected_exception_is_one_line_unless_verbose(capsys):
    def crash(args):
        raise RuntimeError("boom\nsecond line")

    assert run(["-i", "x"], crash) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: boom" in err and "Traceback" not in err
    assert run(["-i", "x", "-v", "2"], crash) == 1
    assert "Traceback" in capsys.readouterr().err


def test_dispatcher_lists_subcommands_and_rejects_unknown(capsys):
    assert dispatcher.main(["-h"]) == 0
    out = capsys.readouterr().out
    for name in dispatcher.SUBCOMMANDS:
        assert name in out
    assert dispatcher.main(["frobnicate"]) == 2
    usage, error = capsys.readouterr().err.splitlines()
    assert usage == "usage: sct_lesion_classify <subcommand> [options]"
    assert error.startswith("sct_lesion_classify: error: unknown subcommand 'frobnicate'")
    assert dispatcher.main([]) == 2
    usage, error = capsys.readouterr().err.splitlines()
    assert usage.startswith("usage: ") and "a subcommand is required" in error


def _command_mains():
    from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion

    mains = {"sct_deepseg_imlesion": deepseg_imlesion.main, "sct_classify_lesion": classify_lesion.main,
             "sct_lesion_classify": dispatcher.main}
    for name in dispatcher.SUBCOMMANDS:
        mains[f"sct_lesion_classify {name}"] = lambda argv, name=name: dispatcher.main([name, *argv])
    return mains


@pytest.mark.parametrize("prog", list(_command_mains()))
def test_every_command_without_arguments_exits_2_with_usage_on_stderr(prog, capsys):
    """SCT's testing/cli/test_cli.py: a command called without arguments returns 2, "usage" on stderr."""
    assert _command_mains()[prog]([]) == 2
    out, err = capsys.readouterr()
    usage, error = err.splitlines()
    assert usage.startswith(f"usage: {prog} ") and usage.endswith(" [options]")
    assert error.startswith(f"{prog}: error: ") and error.endswith(f"(see {prog} -h)")
    assert out == ""


def _parsers():
    import importlib

    from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion

    parsers = [deepseg_imlesion.get_parser(), classify_lesion.get_parser()]
    parsers += [importlib.import_module(module).get_parser() for module, _ in dispatcher.SUBCOMMANDS.values()]
    return parsers


def test_hidden_sct_flags_are_accepted_and_not_listed_by_help():
    for parser in _parsers():
        subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        for one in [parser] + [p for action in subparsers for p in action.choices.values()]:
            if not any("-v" in action.option_strings for action in one._actions):
                continue  # a dispatcher level without the MISC options (models' actions have them)
            help_text = one.format_help()
            assert "-profile-time" not in help_text and "-trace-memory" not in help_text, one.prog
            assert "-v " in help_text


def test_profile_time_logs_the_stage_table(capsys, tmp_path):
    def body(args):
        args.stage_times.add({"load": 0.25, "segment": 1.5})
        args.stage_times.add({"load": 0.75})
        return 0

    assert run(["-i", "x"], body) == 0
    assert "Time profile" not in capsys.readouterr().out  # only when asked
    report = tmp_path / "profile" / "times.txt"
    assert run(["-i", "x", "-profile-time", str(report)], body) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert out.splitlines()[0] == "Time profile (-profile-time):"
    assert lines["load"][:2] == ["1.000", "2"] and lines["segment"][:2] == ["1.500", "1"]
    assert lines["total"][0] == "(wall" and float(lines["total"][2]) >= 0
    assert report.read_text().splitlines() == out.splitlines()
    assert run(["-profile-time", "-i", "x"], body) == 0  # without a value: logged only
    assert "load" in capsys.readouterr().out


def test_trace_memory_logs_the_peak(capsys, tmp_path):
    def body(args):
        args.buffer = bytearray(8 * 2 ** 20)  # 8 MiB traced by tracemalloc
        return 0

    assert run(["-i", "x", "-trace-memory", str(tmp_path)], body) == 0
    out = capsys.readouterr().out
    assert "Peak memory (-trace-memory):" in out
    resident = float(out.split("resident set, this process:")[1].split()[0])
    traced = float(out.split("Python allocations (tracemalloc peak):")[1].split()[0])
    assert resident > 8 and 8 <= traced < resident
    assert "resident set, this process" in (tmp_path / "peak_memory.txt").read_text()
    import tracemalloc

    assert not tracemalloc.is_tracing()  # stopped after the report


def test_profile_reports_also_after_a_failure(capsys):
    def failing(args):
        args.stage_times.add({"load": 0.5})
        raise InputError("in.nii.gz: T2w image is empty")

    assert run(["-i", "x", "-profile-time", "-v", "1"], failing) == 2
    out, err = capsys.readouterr()
    assert "Time profile" in out and err == "sct_dummy: error: in.nii.gz: T2w image is empty\n"


@pytest.mark.parametrize("values, expected", [
    (["10", "20", "10vox"], ("10vox", "20vox", "10vox")),  # SCT: the last value's unit applies to all
    (["5", "20MM3"], ("5mm3", "20mm3")),
    (["20mm3", "5vox"], ("20mm3", "5vox")),  # each value with its own unit
    (["5"], ("5vox",)),  # no unit anywhere: voxels, as sct_deepseg reads it
    (["2.5", "7"], ("2.5vox", "7vox")),
])
def test_remove_small_takes_sct_forms(values, expected):
    from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion
    from sct_lesion_classify.cli.common import segmentation_options

    for parser in (deepseg_imlesion.get_parser(), classify_lesion.get_parser()):
        args = parser.parse_args(["-i", "t2.nii.gz", "-remove-small", *values])
        assert args.remove_small == expected
    args.r = 1
    assert segmentation_options(args).remove_small == expected


def test_remove_small_rejects_other_units(capsys):
    from sct_lesion_classify.cli import deepseg_imlesion

    assert deepseg_imlesion.main(["-i", "t2.nii.gz", "-remove-small", "10", "5cm3"]) == 2
    usage, error = capsys.readouterr().err.splitlines()
    assert usage == "usage: sct_deepseg_imlesion -i <file> [options]"
    assert "argument -remove-small: expected a size like '20mm3', '5vox' or '10 20 10vox', got '5cm3'" in error


COMMAND_MODULES = sorted({module for module, _ in dispatcher.SUBCOMMANDS.values()}
                         | {"sct_lesion_classify.cli.sct_lesion_classify",
                            "sct_lesion_classify.cli.deepseg_imlesion",
                            "sct_lesion_classify.cli.classify_lesion"})


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_command_modules_import_no_heavy_library(module):
    """-h must be instant: a command module may not import numpy, nibabel, onnxruntime or torch."""
    code = (f"import sys, {module}; heavy = [m for m in ('numpy', 'nibabel', 'scipy', 'onnxruntime',"
            " 'torch', 'monai') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["sct_lesion_classify.cli.classify_lesion", "sct_lesion_classify.cli.deepseg_imlesion"])
def test_console_entry_ends_without_teardown_with_outputs_and_messages_complete(module, tmp_path):
    from sct_lesion_classify.io.bids import discover_subjects

    subject = discover_subjects(Path(__file__).resolve().parents[1] / "testing_data")[0]
    argv = ["-i", str(subject.t2w), "-s", str(subject.cord_mask), "-v", "1"]
    if module.endswith("classify_lesion"):
        argv += ["-lesion", str(subject.lesion_mask), "-o", str(tmp_path / "diagnosis.json")]
        last_line, written = "Diagnosis written to", tmp_path / "diagnosis.json"
    else:
        argv += ["-o", str(tmp_path / "lesion.nii.gz")]
        last_line, written = "itksnap -g", tmp_path / "lesion.nii.gz"
    done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert last_line in done.stdout + done.stderr  # flushed before os._exit, into a pipe
    assert written.is_file() and written.stat().st_size > 0
    broken = tmp_path / "broken_T2w.nii.gz"
    broken.write_bytes(b"not a NIfTI file")
    failed = subprocess.run([sys.executable, "-m", module, "-i", str(broken)], capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "not a readable NIfTI file" in failed.stderr
