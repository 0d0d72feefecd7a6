"""A description of the machine a benchmark ran on, stored beside its figures, and the state of
the installation the timings assume."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> dict:
    """CPU model, usable cores, memory, Python and key library versions."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal"):
                    memory_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    versions = {}
    for name in ("numpy", "scipy", "nibabel", "onnxruntime", "torch"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    return {
        "cpu": cpu,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "versions": versions,
    }


def compile_package_bytecode() -> str:
    """Write the bytecode of ``sct_lesion_classify`` (``__pycache__``, git-ignored) before timing.

    ``pip install`` compiles a package's modules, and Python writes an editable install's
    bytecode at its first import, so a user's commands never compile the sources. A machine that
    sets ``PYTHONDONTWRITEBYTECODE`` (this project's CI machine does) would compile them in every
    timed process: about 0.1-0.2 s of the start-up of ``sct_classify_lesion``. Returns what was done,
    for the results' machine description.
    """
    import compileall

    import sct_lesion_classify

    package = Path(sct_lesion_classify.__file__).parent
    ok = compileall.compile_dir(str(package), quiet=1)
    return f"compiled before timing ({package.name}, {'ok' if ok else 'with errors'})"
