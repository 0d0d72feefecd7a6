"""The phantoms' class-conditional statistics against Zhuo et al. Table 1 (issue 15), as markdown.

::

    python -m bench.phantom_table1 -n 300 --styles realistic          # about 1 min on one core
    python -m bench.phantom_table1 -n 100 --styles randomised         # about 2.5 min (drawn voxels)
    python -m bench.phantom_table1 -n 400 --params-only               # parameters only, seconds

Each cell is ``drawn ; measured`` (the generator's parameters ; the rendered masks); see
``sct_lesion_classify.phantom.table1`` for the definitions and ``docs/phantoms.md`` for the result.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from sct_lesion_classify.phantom.style import STYLES
    from sct_lesion_classify.phantom.table1 import class_summaries, comparison_markdown

    parser = argparse.ArgumentParser(prog="python -m bench.phantom_table1", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="subjects per class and style (default 200)")
    parser.add_argument("--styles", nargs="+", choices=STYLES, default=["realistic", "randomised"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params-only", action="store_true", help="no rendering: the drawn parameters only")
    parser.add_argument("--voxel-floor-mm", type=float, default=None,
                        help="random styles: render with voxels no smaller than this (faster)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    summaries = class_summaries(args.n, styles=tuple(args.styles), seed=args.seed, render=not args.params_only,
                                voxel_floor_mm=args.voxel_floor_mm)
    sys.stdout.write(comparison_markdown(summaries) + "\n")
    sys.stdout.write(f"\n{args.n} subjects per class and style, seed {args.seed}, "
                     f"{time.perf_counter() - start:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
