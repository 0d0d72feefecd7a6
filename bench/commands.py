"""The argv that runs one of the project's commands as a user does, in a new process."""

from __future__ import annotations

import shutil
import sys


def command_argv(script: tuple[str, ...], module: str) -> list[str]:
    """``script`` (console script, then its arguments) found on PATH, else run through ``module``'s
    ``main`` with this interpreter, so the figures exist in a plain checkout too."""
    found = shutil.which(script[0])
    if found:
        return [found, *script[1:]]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))",
            *script[1:]]
