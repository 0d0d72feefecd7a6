"""Latency of ``-h`` for every command, as a user types it (a new process each time)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

#: (label, argv) of every command and subcommand; a console script missing from PATH falls back to
#: ``python -m`` of its module so the figure exists in a plain checkout too.
COMMANDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sct_lesion_classify -h", ("sct_lesion_classify", "-h"), "sct_lesion_classify.cli.sct_lesion_classify"),
    ("sct_deepseg_imlesion -h", ("sct_deepseg_imlesion", "-h"), "sct_lesion_classify.cli.deepseg_imlesion"),
    ("sct_classify_lesion -h", ("sct_classify_lesion", "-h"), "sct_lesion_classify.cli.classify_lesion"),
)


def _argv(script: tuple[str, ...], module: str) -> list[str]:
    found = shutil.which(script[0])
    if found:
        return [found, *script[1:]]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))",
            *script[1:]]


def commands() -> list[tuple[str, list[str]]]:
    """Every command and subcommand that exists in this installation."""
    from sct_lesion_classify.cli.sct_lesion_classify import SUBCOMMANDS

    result = [(label, _argv(script, module)) for label, script, module in COMMANDS]
    for name in SUBCOMMANDS:
        result.append((f"sct_lesion_classify {name} -h",
                       _argv(("sct_lesion_classify", name, "-h"), "sct_lesion_classify.cli.sct_lesion_classify")))
    return result


def run(repeats: int = 7) -> dict:
    """Median wall time of ``-h`` (after one warm-up run) for each command."""
    results = {}
    for label, argv in commands():
        subprocess.run(argv, capture_output=True, check=True)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        results[label] = {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4),
                          "runs": repeats, "target_s": 0.5}
    return results
