"""install(): download over a local HTTP server and file://, sha256, safe extraction, timeouts."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg import registry as reg
from sct_lesion_classify.modelpkg.download import extract_archive, install
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package


# ---------------------------------------------------------------------- fixtures
class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int | None]] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path not in self.routes:
            self.send_error(404)
            return
        payload, declared = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(declared if declared is not None else len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A local HTTP server; ``serve(path, payload, declared_length=None)`` adds a route."""
    routes: dict[str, tuple[bytes, int | None]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def serve(path: str, payload: bytes, declared_length: int | None = None) -> str:
        routes[path] = (payload, declared_length)
        return base + path

    yield serve
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(reg.ENV_CACHE_DIR, str(root))
    monkeypatch.setenv(reg.ENV_BUNDLED_DIR, str(tmp_path / "bundled"))
    return root


@pytest.fixture
def package_dir(tmp_path):
    return write_tiny_package(tmp_path / "src", "tiny_seg", version="1.2.0")


def zip_bytes(folder: Path, prefix: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.iterdir()):
            arcname = f"{prefix if prefix is not None else folder.name}/{path.name}".lstrip("/")
            bundle.write(path, arcname)
    return buffer.getvalue()


def tar_bytes(folder: Path, extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.add(folder, arcname=folder.name)
        for info in extra:
            bundle.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return buffer.getvalue()


def sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def leftovers(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir() if path.name.startswith("."))


# ---------------------------------------------------------------------- success
def test_install_zip_over_http(http_server, cache, package_dir):
    payload = zip_bytes(package_dir)
    url = http_server("/tiny_seg-1.2.0.zip", payload)
    package = install(url, sha256=sha(payload))
    assert package.folder == (cache / "tiny_seg" / "1.2.0").resolve()
    assert package.sha256 == ModelPackage.load(package_dir).sha256
    assert leftovers(cache) == []
    assert reg.resolve("tiny_seg").folder == package.folder
    # a second install of the same version keeps the installed one
    again = install(url, sha256=sha(payload))
    assert again.folder == package.folder
    assert install(url, sha256=sha(payload), force=True).folder == package.folder
    assert leftovers(cache) == [] and leftovers(cache / "tiny_seg") == []


def test_install_tar_gz_over_file_url_and_path(cache, package_dir, tmp_path):
    payload = tar_bytes(package_dir)
    archive = tmp_path / "tiny_seg.tar.gz"
    archive.write_bytes(payload)
    package = install(archive.as_uri(), sha256=sha(payload))
    assert package.version == "1.2.0"
    package = install(str(archive), sha256=sha(payload).upper(), force=True)
    assert package.folder.parent == (cache / "tiny_seg").resolve()


def test_install_archive_with_files_at_root(cache, package_dir, tmp_path):
    payload = zip_bytes(package_dir, prefix="")
    archive = tmp_path / "flat.zip"
    archive.write_bytes(payload)
    assert install(str(archive), sha256=sha(payload)).name == "tiny_seg"


def test_install_by_registry_name(http_server, cache, package_dir, tmp_path):
    payload = zip_bytes(package_dir)
    url = http_server("/pkg.zip", payload)
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    (bundled / "registry.json").write_text(json.dumps({"registry_version": 1, "packages": {
        "tiny_seg": {"version": "1.2.0", "task": "lesion_segmentation", "url": url,
                     "sha256": sha(payload)},
        "other_seg": {"version": "9.0.0", "task": "lesion_segmentation", "url": url,
                      "sha256": sha(payload)}}}))
    assert install("tiny_seg").version == "1.2.0"
    with pytest.raises(InputError, match="differs from the registry"):
        install("tiny_seg", sha256="0" * 64)
    with pytest.raises(ModelError, match="holds package 'tiny_seg', expected 'other_seg'"):
        install("other_seg")
    with pytest.raises(InputError, match="unknown model package 'absent'"):
        install("absent")


# ---------------------------------------------------------------------- refusals
def test_tampered_archive_sha_mismatch(http_server, cache, package_dir):
    payload = zip_bytes(package_dir)
    expected = sha(payload)
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    url = http_server("/tampered.zip", tampered)
    with pytest.raises(ModelError) as info:
        install(url, sha256=expected)
    assert expected in str(info.value) and sha(tampered) in str(info.value)
    assert not (cache / "tiny_seg").exists() and leftovers(cache) == []


def test_truncated_download(http_server, cache, package_dir):
    payload = zip_bytes(package_dir)
    url = http_server("/truncated.zip", payload[: len(payload) // 2], declared_length=len(payload))
    with pytest.raises(ModelError, match=r"download truncated \(\d+ of \d+ bytes\)"):
        install(url, sha256=sha(payload))
    assert leftovers(cache) == []


def test_http_404(http_server, cache):
    url = http_server("/exists.zip", b"") .replace("exists", "missing")
    with pytest.raises(ModelError, match="HTTP 404"):
        install(url, sha256="0" * 64)


def test_zip_slip_refused(http_server, cache, package_dir):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in package_dir.iterdir():
            bundle.write(path, f"tiny_seg/{path.name}")
        bundle.writestr("../../evil.txt", b"owned")
    payload = buffer.getvalue()
    url = http_server("/slip.zip", payload)
    with pytest.raises(ModelError, match=r"unsafe archive: member '\.\./\.\./evil\.txt' escapes"):
        install(url, sha256=sha(payload))
    assert not (cache.parent / "evil.txt").exists() and not (cache / "tiny_seg").exists()
    assert leftovers(cache) == []


def test_zip_absolute_path_refused(tmp_path):
    archive = tmp_path / "abs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("/tmp/evil.txt", b"owned")
    # zipfile strips the leading slash when writing; force one into the central directory
    archive.write_bytes(archive.read_bytes().replace(b"tmp/evil.txt", b"/mp/evil.txt"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelError, match="absolute member path"):
        extract_archive(archive, out)


def test_zip_symlink_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("pkg/link")
        info.external_attr = (0o120777 << 16)
        bundle.writestr(info, "/etc/passwd")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelError, match="symbolic link"):
        extract_archive(archive, out)
    assert list(out.iterdir()) == []


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize("info, expected", [
    (_link("tiny_seg/escape", "../../../etc/passwd"), "symbolic link to '../../../etc/passwd' outside"),
    (_link("tiny_seg/abs", "/etc/passwd"), "symbolic link to '/etc/passwd' outside"),
    (_link("tiny_seg/hard", "/etc/passwd", tarfile.LNKTYPE), "hard link to '/etc/passwd' outside"),
    (_link("tiny_seg/dev", "", tarfile.CHRTYPE), "device, FIFO or other special file"),
    (_link("tiny_seg/fifo", "", tarfile.FIFOTYPE), "device, FIFO or other special file"),
])
def test_tar_links_and_devices_refused(http_server, cache, package_dir, info, expected):
    payload = tar_bytes(package_dir, [info])
    url = http_server("/bad.tar.gz", payload)
    with pytest.raises(ModelError, match="unsafe archive") as err:
        install(url, sha256=sha(payload))
    assert expected in str(err.value)
    assert not (cache / "tiny_seg").exists() and leftovers(cache) == []


def test_tar_slip_refused(tmp_path, package_dir):
    info = tarfile.TarInfo("../outside.txt")
    info.size = 1
    payload = tar_bytes(package_dir, [info])
    archive = tmp_path / "slip.tar.gz"
    archive.write_bytes(payload)
    with pytest.raises(ModelError, match="escapes the folder"):
        install(str(archive), sha256=sha(payload), cache_root=tmp_path / "c")
    assert not (tmp_path / "outside.txt").exists()


def test_not_an_archive_and_invalid_package(tmp_path, package_dir):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(ModelError, match=r"not a \.zip or \.tar"):
        install(str(junk), sha256=sha(junk.read_bytes()), cache_root=tmp_path / "c")
    # an archive whose ONNX file does not match its card
    (package_dir / "tiny_seg.onnx").write_bytes(b"garbage")
    payload = zip_bytes(package_dir)
    archive = tmp_path / "bad.zip"
    archive.write_bytes(payload)
    with pytest.raises(ModelError, match="sha256 mismatch for model package 'tiny_seg'"):
        install(str(archive), sha256=sha(payload), cache_root=tmp_path / "c")
    assert leftovers(tmp_path / "c") == [] and not (tmp_path / "c" / "tiny_seg").exists()


def test_url_needs_sha256(cache):
    with pytest.raises(InputError, match="sha256 is required"):
        install("https://127.0.0.1:9/x.zip")
    with pytest.raises(InputError, match="invalid sha256"):
        install("https://127.0.0.1:9/x.zip", sha256="abc")


def test_timeout_against_silent_server(cache):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the TCP handshake, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/never.zip"
        with pytest.raises(ModelError, match="timed out after 0.3 s"):
            install(url, sha256="0" * 64, timeout_s=0.3)
    finally:
        listener.close()
    assert leftovers(cache) == []


def test_connection_refused(cache):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ModelError, match="download failed"):
        install(f"http://127.0.0.1:{port}/x.zip", sha256="0" * 64, timeout_s=2)
