"""Latency of ``-h`` for every command, as a user types it (a new process each time)."""

from __future__ import annotations

import statistics
import subprocess
import time

from bench.commands import command_argv

#: (label, argv) of every command and subcommand; a console script missing from PATH falls back to
#: ``python -m`` of its module so the figure exists in a plain checkout too.
COMMANDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sct_lesion_classify -h", ("sct_lesion_classify", "-h"), "sct_lesion_classify.cli.sct_lesion_classify"),
    ("sct_deepseg_imlesion -h", ("sct_deepseg_imlesion", "-h"), "sct_lesion_classify.cli.deepseg_imlesion"),
    ("sct_classify_lesion -h", ("sct_classify_lesion", "-h"), "sct_lesion_classify.cli.classify_lesion"),
)


def commands() -> list[tuple[str, list[str]]]:
    """Every command and subcommand that exists in this installation."""
    from sct_lesion_classify.cli.sct_lesion_classify import SUBCOMMANDS

    result = [(label, command_argv(script, module)) for label, script, module in COMMANDS]
    for name in SUBCOMMANDS:
        result.append((f"sct_lesion_classify {name} -h",
                       command_argv(("sct_lesion_classify", name, "-h"), "sct_lesion_classify.cli.sct_lesion_classify")))
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
