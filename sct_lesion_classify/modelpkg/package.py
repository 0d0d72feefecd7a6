"""A model package on disk: a folder with ``<name>.json`` (the card) and ``<name>.onnx``.

``ModelPackage.load(folder)`` reads and validates the card and checks the ONNX file's sha256
against ``files.sha256``, refusing a missing, truncated or modified file (SPEC section 5). Hashes
are computed once per file version (streamed) and cached in the process, keyed by
(path, size, mtime, inode), so a batch that loads the same package per image hashes it once.

Two folder layouts are accepted: ``.../<name>/`` (bundled packages, ``-custom-model``) and
``.../<name>/<version>/`` (the install cache).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg.card import ModelCard

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_HASH_CACHE: dict[tuple[str, int, int, int, int], str] = {}
_HASH_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelPackage:
    """A loaded (and, by default, verified) model package.

    Attributes
    ----------
    folder
        The package folder (absolute).
    card
        The validated model card.
    onnx_path
        ``folder / card.files.onnx``.
    """

    folder: Path
    card: ModelCard
    onnx_path: Path

    @property
    def name(self) -> str:
        """The package name (``card.name``)."""
        return self.card.name

    @property
    def version(self) -> str:
        """The package version (``card.version``)."""
        return self.card.version

    @property
    def sha256(self) -> str:
        """The sha256 of the ONNX file, as recorded in the card (and verified by ``load``)."""
        return self.card.files.sha256

    @property
    def card_path(self) -> Path:
        """Path of the card, ``folder / <name>.json``."""
        return self.folder / f"{self.card.name}.json"

    @classmethod
    def load(cls, folder: str | os.PathLike, *, verify: bool = True) -> "ModelPackage":
        """Load the package in ``folder``.

        Parameters
        ----------
        folder
            ``.../<name>/`` or ``.../<name>/<version>/`` holding ``<name>.json`` and ``<name>.onnx``.
        verify
            Check the ONNX file's sha256 against the card (default). ``False`` only checks that
            the file exists (for tools that write packages).

        Raises
        ------
        ModelError
            Not a package folder, an invalid card, a folder name that disagrees with the card,
            a missing ONNX file or a sha256 mismatch (the message names both hashes).
        """
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise ModelError(f"{folder}: model package folder not found")
        card_path = _find_card(folder)
        card = ModelCard.load(card_path)
        if card_path.stem != card.name:
            raise ModelError(f"{card_path}: the card's name {card.name!r} differs from its file "
                             f"name (expected {card.name}.json)")
        if not (folder.name == card.name
                or (folder.name == card.version and folder.parent.name == card.name)):
            raise ModelError(f"{folder}: the folder of package {card.name!r} must be named "
                             f"{card.name!r} (or {card.name}/{card.version} in the install cache)")
        onnx_path = folder / card.files.onnx
        if not onnx_path.is_file():
            raise ModelError(f"{onnx_path}: ONNX file of package {card.name!r} not found")
        package = cls(folder=folder, card=card, onnx_path=onnx_path)
        if verify:
            package.verify()
        return package

    def verify(self) -> None:
        """Check the ONNX file's sha256 against the card; raise ModelError on a mismatch."""
        actual = file_sha256(self.onnx_path)
        expected = self.card.files.sha256
        if actual != expected:
            raise ModelError(
                f"{self.onnx_path}: sha256 mismatch for model package {self.name!r} "
                f"(expected {expected}, actual {actual}): the file is truncated, modified or "
                f"not the one the card describes; reinstall the package")
        logger.debug("verified %s (sha256 %s)", self.onnx_path, actual)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (lowercase hex) of a file, streamed, cached per (path, size, mtime, inode).

    Raises
    ------
    ModelError
        If the file cannot be read.
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    with _HASH_LOCK:
        cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    value = digest.hexdigest()
    with _HASH_LOCK:
        _HASH_CACHE[key] = value
    return value


def clear_hash_cache() -> None:
    """Forget every cached hash (tests; a long-lived process after replacing files in place)."""
    with _HASH_LOCK:
        _HASH_CACHE.clear()


def _find_card(folder: Path) -> Path:
    for stem in (folder.name, folder.parent.name):
        candidate = folder / f"{stem}.json"
        if candidate.is_file():
            return candidate
    cards = sorted(folder.glob("*.json"))
    if len(cards) == 1:
        return cards[0]
    raise ModelError(f"{folder}: not a model package (expected <name>.json and <name>.onnx, "
                     f"found {len(cards)} JSON files)")
