"""``sct_lesion_classify models``: list, verify and install model packages (SPEC section 5).

- ``list``: every package known here (bundled, installed, downloadable), verified or not.
- ``verify [NAME|FOLDER ...]``: check cards and sha256 (all local packages without arguments);
  exit 1 when one fails.
- ``install NAME|URL|ARCHIVE [-sha256 HEX] [-force]``: download, verify and install into the cache.

Only the standard library and ``cli.frame`` are imported at module level (instant ``-h``).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_float, run_command

PROG = "sct_lesion_classify models"


def _sha256(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(f"not a sha256 (64 hexadecimal digits): {text!r}")
    return value


def get_parser() -> SCTArgumentParser:
    """The parser of ``sct_lesion_classify models`` and its actions."""
    parser = SCTArgumentParser(
        prog=PROG,
        description="List, verify and install model packages (a folder <name>/ holding the ONNX "
                    "network <name>.onnx and its model card <name>.json). Packages come from "
                    "-custom-model folders, the install cache ($SCT_LESION_CLASSIFY_MODELS_DIR, "
                    "default ~/.cache/sct_lesion_classify/models) and the bundled folder "
                    "(models/ of the repository, $SCT_LESION_CLASSIFY_BUNDLED_DIR), in that order.")
    parser.misc.add_argument("-h", "--help", action="help", help="Show this help message and exit.")
    actions = parser.add_subparsers(title="ACTIONS", dest="action", required=True,
                                    metavar="{list,verify,install}", parser_class=SCTArgumentParser)

    listing = actions.add_parser("list", prog=f"{PROG} list", help="List the model packages.",
                                 description="List bundled, installed and downloadable model "
                                             "packages, with their verification status.")
    listing.add_misc_args(remove_temp=False)

    verify = actions.add_parser("verify", prog=f"{PROG} verify",
                                help="Verify model packages (card and sha256).",
                                description="Validate the model card and the sha256 of the ONNX "
                                            "file of each package. Exit 1 if one fails.")
    verify.optional.add_argument(
        "packages", nargs="*", metavar="NAME|FOLDER",
        help="Package names (resolved as the pipeline does) or package folders. Default: every "
             "bundled and installed package.")
    verify.add_misc_args(remove_temp=False)

    install = actions.add_parser("install", prog=f"{PROG} install",
                                 help="Download, verify and install a model package.",
                                 description="Download a package archive (.zip or .tar.gz holding "
                                             "the package folder), check its sha256, extract it "
                                             "safely, validate the package and move it atomically "
                                             "into the install cache.")
    install.mandatory.add_argument(
        "source", metavar="NAME|URL|ARCHIVE",
        help="A registry name (sct_lesion_classify models list), an http(s):// or file:// URL, "
             "or the path of a local archive.")
    install.optional.add_argument(
        "-sha256", "--sha256", metavar="<hex>", type=_sha256, default=None,
        help="sha256 of the archive. Required for a URL or an archive path; for a registry name "
             "it must match the registry.")
    install.optional.add_argument(
        "-force", "--force", action="store_true",
        help="Reinstall even when the same version is already installed and verifies.")
    install.optional.add_argument(
        "-timeout", "--timeout", metavar="<seconds>", type=positive_float, default=60.0,
        help="Network timeout of each connection and read, in seconds (default 60).")
    install.add_misc_args(remove_temp=False)
    return parser


def _list(args: argparse.Namespace) -> int:
    from sct_lesion_classify.errors import ModelError
    from sct_lesion_classify.modelpkg import registry as reg
    from sct_lesion_classify.modelpkg.package import ModelPackage

    registry = reg.load_registry()
    rows: list[tuple[str, ...]] = []
    seen: set[tuple[str, str]] = set()
    for location in reg.iter_locations(registry):
        entry = registry.get(location.name)
        try:
            package = ModelPackage.load(location.folder)
        except ModelError as exc:
            version = location.folder.name if location.source == reg.SOURCE_CACHED else "?"
            task = entry.task if entry is not None else "?"
            status = "FAILED: " + " ".join(str(exc).split())
        else:
            version, task, status = package.version, package.card.task, "yes"
        seen.add((location.name, version))
        rows.append((location.name, version, task, location.source, status, str(location.folder)))
    for entry in registry.entries.values():
        if (entry.name, entry.version) in seen:
            continue
        if entry.url:
            rows.append((entry.name, entry.version, entry.task, reg.SOURCE_DOWNLOADABLE, "-",
                         entry.url))
        elif entry.bundled:
            rows.append((entry.name, entry.version, entry.task, reg.SOURCE_BUNDLED, "MISSING",
                         str(reg.bundled_root() / entry.name)))
    if not rows:
        print(f"No model packages: the registry ({registry.path or 'none'}) lists none, none is "
              f"bundled in {reg.bundled_root()} and none is installed in {reg.cache_root()}.")
        return 0
    header = ("NAME", "VERSION", "TASK", "SOURCE", "VERIFIED", "LOCATION")
    rows.sort(key=lambda row: (row[0], reg.version_key(row[1]), row[3]))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sct_lesion_classify.errors import InputError, ModelError
    from sct_lesion_classify.modelpkg import registry as reg
    from sct_lesion_classify.modelpkg.package import ModelPackage

    targets: list[tuple[str, Path | None]] = []  # (label, folder or None for a name)
    if args.packages:
        for item in args.packages:
            path = Path(item).expanduser()
            if path.is_dir():
                targets.append((item, path))
            elif "/" in item or "\\" in item or item.startswith("."):
                raise InputError(f"{item}: model package folder not found")
            else:
                targets.append((item, None))
    else:
        targets = [(f"{loc.name} ({loc.source})", loc.folder)
                   for loc in reg.iter_locations()]
        if not targets:
            print(f"No model packages to verify (none bundled in {reg.bundled_root()}, none "
                  f"installed in {reg.cache_root()}).")
            return 0
    failures: list[tuple[str, str]] = []
    for label, folder in targets:
        try:
            package = ModelPackage.load(folder) if folder is not None else reg.resolve(label)
        except ModelError as exc:
            message = " ".join(str(exc).split())
            failures.append((label, message))
            print(f"FAILED  {label}: {message}")
        else:
            print(f"OK      {package.name} {package.version}  sha256 {package.sha256}  "
                  f"{package.folder}")
    if len(failures) == 1:
        label, message = failures[0]
        raise ModelError(f"model package {label} failed verification: {message}")
    if failures:
        raise ModelError(f"{len(failures)} of {len(targets)} model packages failed verification: "
                         + ", ".join(label for label, _ in failures))
    return 0


def _install(args: argparse.Namespace) -> int:
    from sct_lesion_classify.modelpkg.download import install

    package = install(args.source, sha256=args.sha256, timeout_s=args.timeout, force=args.force)
    print(f"Installed {package.name} {package.version} ({package.card.task}) in {package.folder} "
          f"(ONNX sha256 {package.sha256})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sct_lesion_classify models``; return the exit code."""
    parser = get_parser()
    bodies = {"list": _list, "verify": _verify, "install": _install}
    return run_command(parser, argv, lambda args: bodies[args.action](args))


if __name__ == "__main__":
    sys.exit(main())
