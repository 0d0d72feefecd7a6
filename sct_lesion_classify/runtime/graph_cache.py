"""ONNX Runtime's optimised graph of each model package, kept once in a cache and verified.

Creating a session parses the ONNX file and runs the graph optimizations: constant folding (the
float16 weights of the classifiers become float32), operator fusion, and the change to the CPU's
blocked (NCHWc) layout. For a DenseNet121 that is most of its creation time (0.28 s of 0.28 s
against 0.08 s for the saved optimised graph, on the 2-core development machine). ONNX Runtime can
save the optimised graph (``SessionOptions.optimized_model_filepath``, in its own ORT format);
a later session loads it with the optimizations off and computes the same outputs, bit for bit.

The optimised graph depends on the package, the ONNX Runtime version and the CPU (the blocked
layout follows the width of its vector units), so the file name holds all three:
``<package name>-<first 16 hex of the package's sha256>-ort<version>-r<rewrite>-cpu<signature>.ort``. The
file's own sha256 is written beside it (``.sha256``) and checked on every load: a file that does
not match, or does not load, is rebuilt from the package, never used. ONNX Runtime then reads the
file by its path rather than from the checked bytes: its Python binding keeps model bytes for the
life of the session, and a DenseNet121 loaded from the saved graph by path holds 89 MB after
creation against 115 MB from the package (its float16 weights and their float32 copies). The
package itself is still verified against its card before any of this
(:meth:`~sct_lesion_classify.modelpkg.package.ModelPackage.load`). The graph is saved after
:mod:`~sct_lesion_classify.runtime.graph_rewrite`'s normalisation, whose version is in the name too
(``-r<version>``), so a change of the rewrite never reuses a graph saved by an older one.

The cache root is ``$SCT_LESION_CLASSIFY_ORT_CACHE``, default
``~/.cache/sct_lesion_classify/onnxruntime``; ``SCT_LESION_CLASSIFY_ORT_CACHE=0`` turns the cache
off. A cache that cannot be written (read-only home, full disk) only costs the time it would save.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg.package import ModelPackage, file_sha256
from sct_lesion_classify.runtime.graph_rewrite import REWRITE_VERSION

logger = logging.getLogger(__name__)

ENV_GRAPH_CACHE = "SCT_LESION_CLASSIFY_ORT_CACHE"
#: Values of ``$SCT_LESION_CLASSIFY_ORT_CACHE`` that turn the cache off.
DISABLED = ("0", "off", "no", "false")
SUFFIX = ".ort"


def graph_cache_root() -> Path | None:
    """The cache folder, or None when ``$SCT_LESION_CLASSIFY_ORT_CACHE`` turns the cache off."""
    value = os.environ.get(ENV_GRAPH_CACHE)
    if value is not None and value.strip().lower() in DISABLED:
        return None
    if value:
        return Path(value).expanduser()
    return Path.home() / ".cache" / "sct_lesion_classify" / "onnxruntime"


@functools.lru_cache(maxsize=1)
def cpu_signature() -> str:
    """12 hex digits that change with the CPU's architecture and instruction-set extensions."""
    text = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):  # x86 / ARM
                    text += " " + " ".join(sorted(line.split(":", 1)[1].split()))
                    break
    except OSError:
        text += " " + platform.processor()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CachedGraph:
    """Where the optimised graph of one package lives in the cache (it may not exist yet)."""

    path: Path
    package_key: str  # ``<package name>-<first 16 hex of its sha256>``, the start of the file name

    @classmethod
    def of(cls, package: ModelPackage, root: Path, ort_version: str) -> "CachedGraph":
        """The entry of ``package`` for this ONNX Runtime version and this CPU.

        The key is the sha256 of the ONNX file as it is now (hashed once per process, see
        :func:`~sct_lesion_classify.modelpkg.package.file_sha256`), which ``ModelPackage.load``
        has checked against the card: a package written again under the same name gets a new entry.
        """
        package_key = f"{package.name}-{file_sha256(package.onnx_path)[:16]}"
        name = f"{package_key}-ort{ort_version}-r{REWRITE_VERSION}-cpu{cpu_signature()}{SUFFIX}"
        return cls(path=root / name, package_key=package_key)

    @property
    def digest_path(self) -> Path:
        """The sidecar holding the graph file's sha256."""
        return self.path.with_name(self.path.name + ".sha256")

    def verified(self) -> bool:
        """True when the graph file exists and matches the sha256 recorded beside it."""
        try:
            expected = self.digest_path.read_text(encoding="ascii").strip()
            actual = file_sha256(self.path)
        except (OSError, UnicodeDecodeError, ModelError):
            return False
        if actual != expected:
            logger.debug("%s does not match its recorded sha256: rebuilt from the package", self.path)
            return False
        return True

    def staging_path(self) -> Path | None:
        """A new temporary file in the cache folder for ONNX Runtime to save into (None: not writable)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            os.close(handle)
        except OSError as exc:
            logger.debug("optimised graph cache %s not writable (%s)", self.path.parent, exc)
            return None
        return Path(name)

    def commit(self, staged: Path) -> None:
        """Move a graph ONNX Runtime saved into place, with its sha256 (atomic renames)."""
        digest_tmp = staged.with_name(staged.name + ".sha256")
        try:
            digest = file_sha256(staged)
            digest_tmp.write_text(digest + "\n", encoding="ascii")
            # the graph first, then its digest: a reader never sees a digest of another file
            os.replace(staged, self.path)
            os.replace(digest_tmp, self.digest_path)
            logger.debug("optimised graph saved to %s", self.path)
            self._prune_stale()
        except (OSError, ModelError) as exc:
            logger.debug("optimised graph not cached (%s)", exc)
        finally:
            discard(staged)
            discard(digest_tmp)

    def _prune_stale(self) -> None:
        """Remove the entries of the same package file and CPU for another ONNX Runtime version or
        rewrite, and the temporary files that killed processes left.

        Entries of other CPUs stay: a cache in a home folder shared by the nodes of a cluster
        serves each kind of node its own graph instead of having them replace each other's.
        """
        for other in self.path.parent.glob(f"{self.package_key}-ort*-cpu{cpu_signature()}{SUFFIX}"):
            if other != self.path:
                CachedGraph(other, self.package_key).discard()
        # temporary files of a process killed while saving (older than an hour: not in progress)
        for leftover in self.path.parent.glob(f".{self.package_key}-*.tmp*"):
            try:
                if time.time() - leftover.stat().st_mtime > 3600:
                    discard(leftover)
            except OSError:
                pass

    def discard(self) -> None:
        """Remove the entry (a graph that ONNX Runtime refused to load)."""
        discard(self.path)
        discard(self.digest_path)


def discard(path: Path) -> None:
    """Remove a file if it exists; errors are ignored (a cache, not an output)."""
    try:
        path.unlink()
    except OSError:
        pass
