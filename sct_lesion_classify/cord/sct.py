"""Cord segmentation by SCT itself (``-cord-method sct``), through its command line.

SCT (>= 6.4) segments the cord with ``sct_deepseg spinalcord -i IMAGE -o OUT``; this module runs
that command when ``sct_deepseg`` is on PATH and returns the path of the mask it wrote.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from sct_lesion_classify.errors import ProcessingError

logger = logging.getLogger(__name__)

#: Upper bound for SCT's cord segmentation of one image (it takes seconds to a few minutes).
SCT_TIMEOUT_S = 1800


def sct_cord_segmentation(image_path: Path, output_path: Path, *, timeout_s: float = SCT_TIMEOUT_S) -> Path:
    """Run ``sct_deepseg spinalcord`` on ``image_path`` and return ``output_path``.

    Raises
    ------
    ProcessingError
        When SCT is not installed, fails, times out or writes no mask.
    """
    executable = shutil.which("sct_deepseg")
    if executable is None:
        raise ProcessingError(
            "-cord-method sct needs the Spinal Cord Toolbox: 'sct_deepseg' is not on PATH "
            "(install SCT, or use -cord-method builtin, or give a cord mask with -s)")
    command = [executable, "spinalcord", "-i", str(image_path), "-o", str(output_path)]
    logger.info("Running SCT's cord segmentation: %s", " ".join(command))
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ProcessingError(f"{image_path}: 'sct_deepseg spinalcord' did not finish in {timeout_s:.0f} s") from None
    except OSError as exc:
        raise ProcessingError(f"cannot run {executable}: {exc.strerror or exc}") from exc
    if completed.returncode != 0:
        last = (completed.stderr or completed.stdout).strip().splitlines()
        raise ProcessingError(
            f"{image_path}: 'sct_deepseg spinalcord' failed with exit code {completed.returncode}"
            + (f" ({last[-1][:200]})" if last else ""))
    if not output_path.is_file():
        raise ProcessingError(f"{image_path}: 'sct_deepseg spinalcord' wrote no mask at {output_path}")
    logger.debug("SCT output:\n%s", completed.stdout)
    return output_path
