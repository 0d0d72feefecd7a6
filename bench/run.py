"""Entry point of the benchmarks: figures, not pass/fail tests.

``python -m bench [--only SECTION ...] [--repeats N]`` runs the sections, prints a table and
merges the figures into ``bench/results.json`` (committed, so that a regression shows as a diff).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from bench import (batch_throughput, help_latency, machine, networks, phantom_generation, pipeline_stages, startup,
                   unet_widths)

RESULTS = Path(__file__).with_name("results.json")

SECTIONS = {
    "help": help_latency.run,
    "phantom": phantom_generation.run,
    "pipeline": pipeline_stages.run,
    "startup": startup.run,
    "networks": networks.run,
    "batch": batch_throughput.run,
    "widths": unet_widths.run,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="sections to run (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to update")
    args = parser.parse_args(argv)

    document = json.loads(args.output.read_text()) if args.output.exists() else {}
    document["machine"] = machine.describe()
    document["machine"]["package_bytecode"] = machine.compile_package_bytecode()
    for name in args.only or SECTIONS:
        figures = SECTIONS[name](repeats=max(args.repeats, 1))
        document.setdefault("sections", {})[name] = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "figures": figures,
        }
        print_table(name, figures)
    args.output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"\nresults written to {args.output}")
    return 0


def print_table(section: str, figures: dict) -> None:
    """Print one section's figures as a two-column table."""
    print(f"\n## {section}")
    for key, value in figures.items():
        if isinstance(value, dict):
            cells = ", ".join(f"{k}={v}" for k, v in value.items())
            print(f"  {key:<42} {cells}")
        else:
            print(f"  {key:<42} {value}")
