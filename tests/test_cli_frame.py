"""The shared command frame: SCT parser groups, exit codes, one-line errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys

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
def test_usage_errors_exit_2_with_one_line(capsys, argv, needle):
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("sct_dummy: error: ")
    assert needle in err


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
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err
    assert dispatcher.main([]) == 2


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
