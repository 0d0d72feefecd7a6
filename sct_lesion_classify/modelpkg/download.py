"""Verified, atomic installation of a model package archive into the install cache.

``install`` downloads (``http(s)://`` or ``file://``; urllib, with a timeout) into a temporary
file inside the cache folder, checks its sha256, extracts the archive (.zip, .tar, .tar.gz,
.tar.bz2, .tar.xz; recognised by content, not by name) member by member with path checks,
validates the extracted package (:meth:`ModelPackage.load`) and renames its folder into place as
``<cache root>/<name>/<version>/``. Nothing is unpickled; a failure leaves no partial package.

Refused archive members: absolute paths, ``..`` components, symbolic or hard links, device files
and FIFOs, more than ``MAX_MEMBERS`` members or ``MAX_EXTRACTED_BYTES`` bytes once extracted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.modelpkg.package import ModelPackage

logger = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MAX_DOWNLOAD_BYTES = 4 << 30
MAX_EXTRACTED_BYTES = 4 << 30
MAX_MEMBERS = 1000
_CHUNK = 1 << 20


def is_url(text: str) -> bool:
    """Whether ``text`` is an ``http://``, ``https://`` or ``file://`` URL."""
    return urllib.parse.urlsplit(str(text)).scheme.lower() in ("http", "https", "file")


def install(name_or_url: str, *, sha256: str | None = None,
            cache_root: str | os.PathLike | None = None, timeout_s: float = 60,
            force: bool = False, registry=None) -> ModelPackage:
    """Install a package into the cache and return it (loaded and verified).

    Parameters
    ----------
    name_or_url
        A registry name (its URL and sha256 come from the registry), a URL, or the path of a
        local archive.
    sha256
        sha256 of the archive: required for a URL or a path; for a registry name, when given,
        it must equal the registry's.
    cache_root
        Root of the install cache (default :func:`registry.cache_root`).
    timeout_s
        Socket timeout of each network operation (connect, each read), seconds.
    force
        Reinstall even when the same version is installed and verifies.
    registry
        A :class:`registry.Registry` (default: the bundled registry file).

    Raises
    ------
    InputError
        Unknown name, a URL without sha256, a malformed sha256.
    ModelError
        Download failure or timeout, sha256 mismatch, unsafe or invalid archive, invalid package.
    """
    from sct_lesion_classify.modelpkg import registry as registry_module

    cache = Path(cache_root if cache_root is not None else registry_module.cache_root())
    expected_name = expected_version = None
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not SHA256_PATTERN.match(sha256):
            raise InputError(f"invalid sha256 {sha256!r} (expected 64 hexadecimal digits)")
    if is_url(name_or_url):
        url = name_or_url
    elif Path(name_or_url).expanduser().is_file():
        url = Path(name_or_url).expanduser().resolve().as_uri()
    else:
        registry = registry if registry is not None else registry_module.load_registry()
        entry = registry.get(name_or_url)
        if entry is None:
            known = ", ".join(sorted(registry.entries)) or "none"
            raise InputError(f"unknown model package {name_or_url!r} (not a URL, a file or a "
                             f"registry name; the registry lists: {known})")
        if entry.url is None:
            package = registry_module.resolve(entry.name, registry=registry, cache=cache)
            logger.info("%s %s is bundled (%s): nothing to download", package.name,
                        package.version, package.folder)
            return package
        if sha256 is not None and sha256 != entry.sha256:
            raise InputError(f"--sha256 {sha256} differs from the registry's {entry.sha256} "
                             f"for {entry.name}")
        url, sha256 = entry.url, entry.sha256
        expected_name, expected_version = entry.name, entry.version
        installed = cache / entry.name / entry.version
        if not force and installed.is_dir():
            try:
                package = ModelPackage.load(installed)
            except ModelError as exc:
                logger.warning("reinstalling %s %s: %s", entry.name, entry.version, exc)
            else:
                logger.info("%s %s is already installed in %s", entry.name, entry.version,
                            installed)
                return package
    if sha256 is None:
        raise InputError(f"{url}: the archive's sha256 is required to install from a URL or file "
                         f"(-sha256)")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{cache}: cannot create the model cache ({exc.strerror})") from None

    fd, archive_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=cache)
    os.close(fd)
    archive = Path(archive_name)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=cache))
    try:
        actual = download(url, archive, timeout_s=timeout_s)
        if actual != sha256:
            raise ModelError(f"{url}: sha256 mismatch of the downloaded archive (expected {sha256}, "
                             f"actual {actual}): refusing to install it")
        extracted = staging / "extracted"
        extracted.mkdir()
        extract_archive(archive, extracted, source=url)
        package_dir = _find_package_dir(extracted, source=url)
        card = ModelCard.load(_card_file(package_dir, source=url))
        if expected_name is not None and card.name != expected_name:
            raise ModelError(f"{url}: the archive holds package {card.name!r}, expected "
                             f"{expected_name!r}")
        if expected_version is not None and card.version != expected_version:
            raise ModelError(f"{url}: the archive holds {card.name} {card.version}, the registry "
                             f"lists version {expected_version}")
        layout = staging / card.name / card.version
        layout.parent.mkdir()
        os.rename(package_dir, layout)
        ModelPackage.load(layout)  # validates the card against its folder and the ONNX sha256
        target = _move_into_place(layout, cache / card.name / card.version, force=force)
        logger.info("installed %s %s in %s", card.name, card.version, target)
        return ModelPackage.load(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            archive.unlink()
        shutil.rmtree(staging, ignore_errors=True)


def download(url: str, destination: str | os.PathLike, *, timeout_s: float = 60,
             max_bytes: int = MAX_DOWNLOAD_BYTES) -> str:
    """Stream ``url`` into the existing file ``destination``; return the sha256 of the bytes.

    Raises
    ------
    ModelError
        HTTP or network error, timeout, a body shorter than its Content-Length, or more than
        ``max_bytes``.
    """
    digest = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "sct_lesion_classify"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, \
                open(destination, "wb") as handle:
            length_header = response.headers.get("Content-Length")
            expected_length = int(length_header) if length_header and length_header.isdigit() else None
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise ModelError(f"{url}: download larger than {max_bytes} bytes, refused")
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except ModelError:
        raise
    except urllib.error.HTTPError as exc:
        raise ModelError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise ModelError(f"{url}: download timed out after {timeout_s:g} s") from None
        raise ModelError(f"{url}: download failed ({reason})") from None
    except (socket.timeout, TimeoutError):
        raise ModelError(f"{url}: download timed out after {timeout_s:g} s (no data)") from None
    except (OSError, ValueError) as exc:  # connection reset, IncompleteRead, bad URL...
        raise ModelError(f"{url}: download failed ({type(exc).__name__}: {exc})") from None
    if expected_length is not None and received != expected_length:
        raise ModelError(f"{url}: download truncated ({received} of {expected_length} bytes)")
    logger.debug("downloaded %s (%d bytes, %.1f s)", url, received, time.monotonic() - started)
    return digest.hexdigest()


# ---------------------------------------------------------------------- archives
def extract_archive(archive: str | os.PathLike, destination: str | os.PathLike, *,
                    source: str | None = None) -> None:
    """Extract a .zip or tar archive into the existing folder ``destination``, safely.

    Raises
    ------
    ModelError
        Not a zip/tar archive, a corrupt one, or an unsafe member (see the module docstring).
    """
    archive, destination = Path(archive), Path(destination).resolve()
    where = source or str(archive)
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, destination, where)
        return
    try:
        is_tar = tarfile.is_tarfile(archive)
    except OSError:
        is_tar = False
    if is_tar:
        _extract_tar(archive, destination, where)
        return
    raise ModelError(f"{where}: not a .zip or .tar(.gz) archive")


def _safe_member_path(name: str, destination: Path, where: str) -> Path:
    """The extraction path of member ``name``, refusing absolute paths and ``..``."""
    normalized = name.replace("\\", "/")
    if (normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized)
            or "\x00" in normalized):
        raise ModelError(f"{where}: unsafe archive: absolute member path {name!r}")
    parts = [part for part in PurePosixPath(normalized).parts if part not in ("", ".")]
    if ".." in parts:
        raise ModelError(f"{where}: unsafe archive: member {name!r} escapes the folder ('..')")
    if not parts:
        return destination
    target = destination.joinpath(*parts).resolve()
    if target != destination and destination not in target.parents:
        raise ModelError(f"{where}: unsafe archive: member {name!r} escapes the folder")
    return target


def _extract_zip(archive: Path, destination: Path, where: str) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            _check_counts(len(members), sum(member.file_size for member in members), where)
            for member in members:
                target = _safe_member_path(member.filename, destination, where)
                mode = member.external_attr >> 16
                kind = stat.S_IFMT(mode)
                if stat.S_ISLNK(mode):
                    raise ModelError(f"{where}: unsafe archive: member {member.filename!r} is a "
                                     f"symbolic link (links are not allowed in a model package)")
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise ModelError(f"{where}: unsafe archive: member {member.filename!r} is not "
                                     f"a regular file or folder")
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as reader, open(target, "xb") as writer:
                    _copy_limited(reader, writer, member.file_size, member.filename, where)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{where}: corrupt zip archive ({exc})") from None
    except FileExistsError as exc:
        raise ModelError(f"{where}: archive member written twice ({exc.filename})") from None
    except (OSError, EOFError) as exc:
        raise ModelError(f"{where}: cannot extract the archive ({exc})") from None


def _extract_tar(archive: Path, destination: Path, where: str) -> None:
    try:
        with tarfile.open(archive, "r:*") as bundle:
            members = bundle.getmembers()
            _check_counts(len(members), sum(m.size for m in members if m.isreg()), where)
            for member in members:  # check all before writing anything
                _safe_member_path(member.name, destination, where)
                if member.issym() or member.islnk():
                    kind = "symbolic" if member.issym() else "hard"
                    outside = _link_points_outside(member, destination)
                    raise ModelError(
                        f"{where}: unsafe archive: member {member.name!r} is a {kind} link to "
                        f"{member.linkname!r}" + (" outside the package" if outside else "")
                        + " (links are not allowed in a model package)")
                if not (member.isreg() or member.isdir()):
                    raise ModelError(f"{where}: unsafe archive: member {member.name!r} is a "
                                     f"device, FIFO or other special file")
            for member in members:
                target = _safe_member_path(member.name, destination, where)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                reader = bundle.extractfile(member)
                if reader is None:
                    raise ModelError(f"{where}: cannot read archive member {member.name!r}")
                with reader, open(target, "xb") as writer:
                    _copy_limited(reader, writer, member.size, member.name, where)
    except tarfile.TarError as exc:
        raise ModelError(f"{where}: corrupt tar archive ({exc})") from None
    except FileExistsError as exc:
        raise ModelError(f"{where}: archive member written twice ({exc.filename})") from None
    except (OSError, EOFError) as exc:
        raise ModelError(f"{where}: cannot extract the archive ({exc})") from None


def _link_points_outside(member: tarfile.TarInfo, destination: Path) -> bool:
    link = member.linkname.replace("\\", "/")
    if link.startswith("/"):
        return True
    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath(".")
    depth = 0
    for part in (base / link).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _check_counts(n_members: int, total_bytes: int, where: str) -> None:
    if n_members > MAX_MEMBERS:
        raise ModelError(f"{where}: unsafe archive: {n_members} members (at most {MAX_MEMBERS})")
    if total_bytes > MAX_EXTRACTED_BYTES:
        raise ModelError(f"{where}: unsafe archive: {total_bytes} bytes once extracted "
                         f"(at most {MAX_EXTRACTED_BYTES})")


def _copy_limited(reader, writer, declared: int, name: str, where: str) -> None:
    written = 0
    for chunk in iter(lambda: reader.read(_CHUNK), b""):
        written += len(chunk)
        if written > declared:
            raise ModelError(f"{where}: unsafe archive: member {name!r} is larger than declared")
        writer.write(chunk)


def _find_package_dir(extracted: Path, *, source: str) -> Path:
    """The package folder: the archive's single top folder, or its root if it holds the files."""
    entries = [entry for entry in extracted.iterdir()
               if not entry.name.startswith("._") and entry.name != "__MACOSX"]
    if any(entry.is_file() and entry.suffix == ".json" for entry in entries):
        return extracted
    folders = [entry for entry in entries if entry.is_dir()]
    if len(folders) == 1:
        return folders[0]
    raise ModelError(f"{source}: the archive does not hold one model package folder "
                     f"(<name>/<name>.json + <name>/<name>.onnx)")


def _card_file(package_dir: Path, *, source: str) -> Path:
    cards = sorted(package_dir.glob("*.json"))
    if len(cards) != 1:
        raise ModelError(f"{source}: the package folder must hold exactly one <name>.json card, "
                         f"found {len(cards)}")
    return cards[0]


def _move_into_place(staged: Path, target: Path, *, force: bool) -> Path:
    """Rename ``staged`` onto ``target`` (same file system); an existing target is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    trash = None
    if target.exists():
        if not force:
            try:
                ModelPackage.load(target)
            except ModelError:
                pass
            else:
                logger.info("%s is already installed (and verifies); use -force to reinstall",
                            target)
                return target
        trash = target.parent / f".old-{target.name}-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(target, trash)
    try:
        os.rename(staged, target)
    except OSError as exc:
        if trash is None and target.exists():  # another process installed it meanwhile
            logger.info("%s was installed meanwhile by another process", target)
            return target
        if trash is not None and not target.exists():
            os.rename(trash, target)  # put the previous version back
            trash = None
        raise ModelError(f"{target}: cannot move the package into place ({exc.strerror})") from None
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return target
