"""A disk cache of model inputs, so that a training run does not rebuild them from the NIfTI files.

Building a classifier's input (read the T2w, the lesion mask and the cT1w, normalize, resample
the lesion slices) costs far more than using it, and the three classifiers of one input contract
see the same tensors. :class:`InputCache` stores each subject's arrays in one ``.npz`` file under
a key made of everything they depend on:

- the card's ``input`` section (the contract: grid, normalization, channels, slice rule);
- each source file's resolved path, size and modification time (a regenerated dataset misses the
  cache rather than reusing stale inputs);
- what else the caller names (``extra``: e.g. whether the cT1w is used).

Files are written atomically (temporary file, then ``os.replace``), so concurrent runs (two
families trained side by side) and interrupted runs never leave a half-written entry; an entry
that cannot be read is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)


class InputCache:
    """Model inputs per subject in ``folder`` (created on the first store).

    Parameters
    ----------
    folder
        The cache folder (the training command uses ``<models>/.train_runs/inputs``).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(input_section: Mapping[str, Any], sources: Sequence[Path | None], extra: str = "") -> str:
        """The sha256 naming an entry (see the module docstring for what goes in)."""
        stamp = []
        for path in sources:
            if path is None:
                stamp.append(None)
                continue
            resolved = Path(path).resolve()
            stat = resolved.stat()
            stamp.append([str(resolved), stat.st_size, stat.st_mtime_ns])
        text = json.dumps({"input": input_section, "sources": stamp, "extra": extra}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (absent or unreadable: the caller rebuilds)."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as exc:
            logger.warning("input cache entry %s unreadable (%s): rebuilding it", path, exc)
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def store(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write the arrays under ``key`` atomically (uncompressed: loading is the point)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **{name: np.asarray(value) for name, value in arrays.items()})
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
