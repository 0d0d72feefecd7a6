"""Model safety (issue 8, part 4) beyond tests/test_modelpkg_download.py and test_modelpkg_package.py.

Those files already cover: sha256 at load (tampered, truncated: both hashes named), atomic
install over HTTP and file://, sha256 mismatch, truncated download, zip-slip, absolute member
paths, symbolic/hard links, devices, timeouts. Here: no unpickling anywhere in the package (a
source scan), the download and archive size limits, and concurrent installs of one package.
The commands' refusal of a tampered package is in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import ast
import hashlib
import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg import download as download_module
from sct_lesion_classify.modelpkg.download import download, extract_archive, install
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package

PACKAGE = Path(__file__).resolve().parents[1] / "sct_lesion_classify"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def test_nothing_is_unpickled_anywhere_in_the_package():
    """ONNX and JSON only; torch.load only with weights_only=True; no np.load(allow_pickle=True)."""
    problems = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            problems += [f"{where}:{node.lineno}: imports {n}" for n in names if n in UNSAFE_MODULES]
        for call, owner, name in _calls(tree):
            if owner == "torch" and name == "load":
                flag = _keyword(call, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and name == "load":
                flag = _keyword(call, "allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}:{call.lineno}: np.load with allow_pickle")
            if owner == "yaml" and name in ("load", "unsafe_load", "full_load"):
                problems.append(f"{where}:{call.lineno}: yaml.{name}")
            if isinstance(call.func, ast.Name) and name in ("eval", "exec"):
                problems.append(f"{where}:{call.lineno}: {name}()")
    assert problems == []


def test_download_larger_than_the_limit_is_refused(tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 5000)
    destination = tmp_path / "dest.part"
    destination.touch()
    with pytest.raises(ModelError, match="download larger than 1000 bytes, refused"):
        download(source.as_uri(), destination, max_bytes=1000)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, payload in members.items():
            bundle.writestr(name, payload)
    return buffer.getvalue()


@pytest.mark.parametrize("limit, value, members, expected", [
    ("MAX_MEMBERS", 3, {f"pkg/f{i}": b"x" for i in range(5)}, "5 members (at most 3)"),
    ("MAX_EXTRACTED_BYTES", 1000, {"pkg/bomb": b"\0" * 100_000}, "100000 bytes once extracted (at most 1000)"),
])
def test_archive_limits(tmp_path, monkeypatch, limit, value, members, expected):
    """A zip bomb or an archive of thousands of files is refused before anything is written."""
    monkeypatch.setattr(download_module, limit, value)
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip(members))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelError, match="unsafe archive") as info:
        extract_archive(archive, out)
    assert expected in str(info.value) and str(archive) in str(info.value)
    assert list(out.iterdir()) == []


def test_concurrent_installs_of_one_package_give_one_valid_package(tmp_path):
    folder = write_tiny_package(tmp_path / "src", "tiny_seg", version="1.2.0")
    payload = _zip({f"tiny_seg/{p.name}": p.read_bytes() for p in folder.iterdir()})
    archive = tmp_path / "tiny_seg.zip"
    archive.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        packages = list(pool.map(lambda _: install(str(archive), sha256=digest, cache_root=cache), range(4)))
    target = (cache / "tiny_seg" / "1.2.0").resolve()
    assert {p.folder for p in packages} == {target}
    assert ModelPackage.load(target).sha256 == ModelPackage.load(folder).sha256
    assert sorted(p.name for p in target.iterdir()) == ["tiny_seg.json", "tiny_seg.onnx"]
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in (cache / "tiny_seg").iterdir()] == ["1.2.0"]
