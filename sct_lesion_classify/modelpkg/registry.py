"""Where model packages come from: the registry, the install cache and the bundled folder.

- The registry (``models/registry.json``, schema ``registry.schema.json``) lists each package
  by name with its version and task, and either ``"bundled": true`` (a folder ``models/<name>/``
  in the repository) or ``url`` + ``sha256`` of a downloadable archive (.zip / .tar.gz).
- The install cache holds downloaded packages as ``<cache root>/<name>/<version>/``. Its root is
  ``$SCT_LESION_CLASSIFY_MODELS_DIR``, default ``~/.cache/sct_lesion_classify/models``.
- The bundled root is ``<repository>/models`` (beside the ``sct_lesion_classify`` package),
  overridable with ``$SCT_LESION_CLASSIFY_BUNDLED_DIR``; the registry file lives there.

Resolution of a package name (:func:`resolve`): an explicit folder (``-custom-model``) > the
install cache (the registry's version, or the newest installed one for a name the registry does
not list) > the bundled folder > an older cached version (with a warning).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg.package import ModelPackage

logger = logging.getLogger(__name__)

ENV_CACHE_DIR = "SCT_LESION_CLASSIFY_MODELS_DIR"
ENV_BUNDLED_DIR = "SCT_LESION_CLASSIFY_BUNDLED_DIR"
REGISTRY_FILE = "registry.json"
SCHEMA_PATH = Path(__file__).with_name("registry.schema.json")
NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")

SOURCE_CUSTOM = "custom"
SOURCE_CACHED = "cached"
SOURCE_BUNDLED = "bundled"
SOURCE_DOWNLOADABLE = "downloadable"


@dataclass(frozen=True)
class RegistryEntry:
    """One package of the registry."""

    name: str
    version: str
    task: str
    bundled: bool
    url: str | None
    sha256: str | None
    description: str


@dataclass(frozen=True)
class Registry:
    """The parsed registry: ``entries`` by name, and the file it came from (None if absent)."""

    entries: Mapping[str, RegistryEntry]
    path: Path | None

    def get(self, name: str) -> RegistryEntry | None:
        """The entry of ``name``, or None."""
        return self.entries.get(name)


@dataclass(frozen=True)
class Location:
    """Where a package name resolved to: its folder and its source (custom/cached/bundled)."""

    name: str
    folder: Path
    source: str


# ---------------------------------------------------------------------- roots
def bundled_root() -> Path:
    """``$SCT_LESION_CLASSIFY_BUNDLED_DIR`` or ``<repository>/models``."""
    override = os.environ.get(ENV_BUNDLED_DIR)
    if override:
        return Path(override).expanduser().resolve()
    import sct_lesion_classify

    return Path(sct_lesion_classify.__file__).resolve().parents[1] / "models"


def cache_root() -> Path:
    """``$SCT_LESION_CLASSIFY_MODELS_DIR`` or ``~/.cache/sct_lesion_classify/models``."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "sct_lesion_classify" / "models"


def registry_path() -> Path:
    """``<bundled root>/registry.json``."""
    return bundled_root() / REGISTRY_FILE


# ---------------------------------------------------------------------- registry
@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Read and validate the registry (default :func:`registry_path`).

    A missing file is an empty registry (a pip-installed plugin has no ``models/`` folder);
    an invalid one raises :class:`ModelError` naming the file and the field.
    """
    from sct_lesion_classify.modelpkg.card import describe_schema_error

    path = Path(path) if path is not None else registry_path()
    if not path.is_file():
        logger.debug("no model registry at %s", path)
        return Registry(entries={}, path=None)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the model registry ({exc})") from None
    problem = describe_schema_error(_validator(), document)
    if problem is not None:
        raise ModelError(f"{path}: invalid model registry: {problem}")
    entries = {
        name: RegistryEntry(name=name, version=entry["version"], task=entry["task"],
                            bundled=entry.get("bundled", False), url=entry.get("url"),
                            sha256=entry.get("sha256"), description=entry.get("description", ""))
        for name, entry in document["packages"].items()
    }
    return Registry(entries=entries, path=path)


# ---------------------------------------------------------------------- discovery
def version_key(version: str) -> tuple:
    """Sort key of a semantic version (pre-releases sort before the release)."""
    core, _, _build = version.partition("+")
    core, dash, pre = core.partition("-")
    try:
        numbers = tuple(int(part) for part in core.split("."))
    except ValueError:
        return ((-1,), 0, version)
    return (numbers, 0 if dash else 1, pre)


def cached_versions(name: str, root: str | os.PathLike | None = None) -> list[str]:
    """Installed versions of ``name`` in the cache, oldest first (folders holding a card)."""
    folder = Path(root if root is not None else cache_root()) / name
    if not NAME_PATTERN.match(name) or not folder.is_dir():
        return []
    versions = [child.name for child in folder.iterdir()
                if child.is_dir() and not child.name.startswith(".")
                and (child / f"{name}.json").is_file()]
    return sorted(versions, key=version_key)


def cached_names(root: str | os.PathLike | None = None) -> list[str]:
    """Package names with at least one installed version in the cache."""
    root = Path(root if root is not None else cache_root())
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir()
                  if child.is_dir() and NAME_PATTERN.match(child.name)
                  and cached_versions(child.name, root))


def bundled_names(root: str | os.PathLike | None = None) -> list[str]:
    """Package names with a folder ``<root>/<name>/`` holding ``<name>.json`` and ``<name>.onnx``.

    ``root`` defaults to the bundled models folder; any folder of packages (such as the output of
    ``train``) can be listed. Other folders are not packages: ``models/evaluation/`` holds an
    ``evaluation.json`` report and no network.
    """
    root = Path(root if root is not None else bundled_root())
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir()
                  if child.is_dir() and NAME_PATTERN.match(child.name)
                  and (child / f"{child.name}.json").is_file()
                  and (child / f"{child.name}.onnx").is_file())


def locate(name: str, *, custom_folder: str | os.PathLike | None = None,
           registry: Registry | None = None, cache: str | os.PathLike | None = None,
           bundled: str | os.PathLike | None = None) -> Location:
    """Find the folder of package ``name`` (see the module docstring for the order).

    Raises
    ------
    InputError
        ``custom_folder`` does not exist.
    ModelError
        No installed or bundled package ``name`` (the message says how to install it).
    """
    if custom_folder is not None:
        folder = Path(custom_folder).expanduser()
        if not folder.is_dir():
            raise InputError(f"{folder}: model folder not found (-custom-model)")
        return Location(name=name, folder=folder.resolve(), source=SOURCE_CUSTOM)
    if not NAME_PATTERN.match(name):
        raise ModelError(f"invalid model package name {name!r} (expected [a-z0-9_]+)")
    registry = registry if registry is not None else load_registry()
    cache = Path(cache if cache is not None else cache_root())
    bundled = Path(bundled if bundled is not None else bundled_root())
    entry = registry.get(name)
    installed = cached_versions(name, cache)
    wanted = entry.version if entry is not None else (installed[-1] if installed else None)
    if wanted is not None and wanted in installed:
        return Location(name=name, folder=cache / name / wanted, source=SOURCE_CACHED)
    if (bundled / name / f"{name}.json").is_file():
        return Location(name=name, folder=bundled / name, source=SOURCE_BUNDLED)
    if installed:
        logger.warning("model package %s: using installed version %s, not the registry's %s "
                       "(run: sct_lesion_classify models install %s)",
                       name, installed[-1], wanted, name)
        return Location(name=name, folder=cache / name / installed[-1], source=SOURCE_CACHED)
    if entry is not None and entry.url:
        raise ModelError(f"model package {name!r} is not installed; run: "
                         f"sct_lesion_classify models install {name}")
    known = sorted(set(registry.entries) | set(bundled_names(bundled)) | set(cached_names(cache)))
    raise ModelError(f"model package {name!r} not found (not bundled in {bundled}, not installed in "
                     f"{cache}); known packages: {', '.join(known) if known else 'none'}")


def resolve(name: str, *, custom_folder: str | os.PathLike | None = None,
            registry: Registry | None = None, cache: str | os.PathLike | None = None,
            bundled: str | os.PathLike | None = None, verify: bool = True) -> ModelPackage:
    """Locate package ``name`` and load it (verifying the sha256 by default).

    With ``custom_folder`` the card's name need not be ``name`` (a user's own model for that
    role), but its task must be the registry's task for ``name`` when the registry lists it.
    """
    location = locate(name, custom_folder=custom_folder, registry=registry, cache=cache,
                      bundled=bundled)
    package = ModelPackage.load(location.folder, verify=verify)
    if location.source != SOURCE_CUSTOM and package.name != name:
        raise ModelError(f"{location.folder}: holds package {package.name!r}, expected {name!r}")
    if location.source == SOURCE_CUSTOM:
        entry = (registry if registry is not None else load_registry()).get(name)
        if entry is not None and entry.task != package.card.task:
            raise ModelError(f"{location.folder}: package {package.name!r} is a "
                             f"{package.card.task} model, but {name!r} needs a {entry.task} model")
    logger.debug("model package %s %s from %s (%s)", package.name, package.version,
                  location.folder, location.source)
    return package


def iter_locations(registry: Registry | None = None, cache: str | os.PathLike | None = None,
                   bundled: str | os.PathLike | None = None) -> Iterable[Location]:
    """Every package folder on this machine: each bundled one and each installed version."""
    cache = Path(cache if cache is not None else cache_root())
    bundled = Path(bundled if bundled is not None else bundled_root())
    for name in bundled_names(bundled):
        yield Location(name=name, folder=bundled / name, source=SOURCE_BUNDLED)
    for name in cached_names(cache):
        for version in cached_versions(name, cache):
            yield Location(name=name, folder=cache / name / version, source=SOURCE_CACHED)
