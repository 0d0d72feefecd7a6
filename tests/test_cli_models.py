"""`sct_lesion_classify models list|verify|install` through main([...])."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile

import pytest

from sct_lesion_classify.cli import models as cli
from sct_lesion_classify.cli.sct_lesion_classify import SUBCOMMANDS
from sct_lesion_classify.cli.sct_lesion_classify import main as dispatcher
from sct_lesion_classify.modelpkg import registry as reg
from sct_lesion_classify.modelpkg.testing import write_tiny_package


@pytest.fixture
def roots(tmp_path, monkeypatch):
    cache, bundled = tmp_path / "cache", tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setenv(reg.ENV_CACHE_DIR, str(cache))
    monkeypatch.setenv(reg.ENV_BUNDLED_DIR, str(bundled))
    return cache, bundled


def zipped(folder):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in folder.iterdir():
            bundle.write(path, f"{folder.name}/{path.name}")
    return buffer.getvalue()


def test_registered_in_dispatcher(capsys):
    assert SUBCOMMANDS["models"][0] == "sct_lesion_classify.cli.models"
    assert dispatcher(["models", "-h"]) == 0
    assert "list" in capsys.readouterr().out


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from sct_lesion_classify.cli import models; models.get_parser(); "
            "print(sorted(m for m in ('numpy', 'onnxruntime', 'jsonschema') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_usage_errors(roots, capsys):
    assert cli.main([]) == 2
    assert cli.main(["remove"]) == 2
    assert cli.main(["install"]) == 2
    assert cli.main(["install", "https://x/y.zip", "-sha256", "xyz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    usage = "usage: sct_lesion_classify models {list,verify,install} [options]"
    assert err[0::2] == [usage] * 4  # each parser error: the usage line, then the error line
    assert all(line.startswith("sct_lesion_classify models: error: ") for line in err[1::2])
    assert cli.main(["install", "https://127.0.0.1:9/y.zip"]) == 2
    assert "sha256 is required" in capsys.readouterr().err
    assert cli.main(["install", "no_such_model"]) == 2
    assert "unknown model package 'no_such_model'" in capsys.readouterr().err


def test_list_empty(roots, capsys):
    assert cli.main(["list"]) == 0
    assert "No model packages" in capsys.readouterr().out


def test_list_verify_install(roots, tmp_path, capsys):
    cache, bundled = roots
    write_tiny_package(bundled, "tiny_seg")
    source = write_tiny_package(tmp_path / "src", "tiny_cls", "classification", version="0.2.0")
    payload = zipped(source)
    archive = tmp_path / "tiny_cls.zip"
    archive.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    (bundled / "registry.json").write_text(json.dumps({"registry_version": 1, "packages": {
        "tiny_seg": {"version": "1.0.0", "task": "lesion_segmentation", "bundled": True},
        "tiny_cls": {"version": "0.2.0", "task": "classification", "url": archive.as_uri(),
                     "sha256": digest}}}))

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "VERSION", "TASK", "SOURCE", "VERIFIED",
                                           "LOCATION"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["tiny_seg"][1:5] == ["1.0.0", "lesion_segmentation", "bundled", "yes"]
    assert rows["tiny_cls"][1:5] == ["0.2.0", "classification", "downloadable", "-"]

    assert cli.main(["install", "tiny_cls", "-v", "0"]) == 0
    assert "Installed tiny_cls 0.2.0" in capsys.readouterr().out
    assert (cache / "tiny_cls" / "0.2.0" / "tiny_cls.onnx").is_file()
    assert cli.main(["install", str(archive), "--sha256", digest, "--force"]) == 0
    capsys.readouterr()

    assert cli.main(["list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["tiny_cls"][3:5] == ["cached", "yes"]

    assert cli.main(["verify"]) == 0
    out = capsys.readouterr().out
    assert out.count("OK") == 2
    assert cli.main(["verify", "tiny_cls", str(bundled / "tiny_seg")]) == 0
    capsys.readouterr()

    # a tampered installed file: verify and list report it, verify exits 1
    onnx_path = cache / "tiny_cls" / "0.2.0" / "tiny_cls.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:-4])
    assert cli.main(["verify", "tiny_cls"]) == 1
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert error.startswith("sct_lesion_classify models: error: model package tiny_cls failed "
                            "verification: ")
    assert "sha256 mismatch" in error and len(error.splitlines()) == 1
    assert cli.main(["verify"]) == 1
    assert "model package tiny_cls (cached) failed verification" in capsys.readouterr().err
    assert cli.main(["list"]) == 0
    assert "FAILED: " in capsys.readouterr().out
    # install repairs it (the installed copy no longer verifies, so it is replaced)
    assert cli.main(["install", "tiny_cls"]) == 0
    assert cli.main(["verify", "tiny_cls"]) == 0


def test_verify_errors(roots, tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path / "absent")]) == 2
    assert "model package folder not found" in capsys.readouterr().err
    assert cli.main(["verify", "unknown_model"]) == 1
    assert "'unknown_model' not found" in capsys.readouterr().err
    first = write_tiny_package(tmp_path / "a", "one_seg", card_overrides={"bogus": 1})
    second = write_tiny_package(tmp_path / "b", "two_seg", card_overrides={"task": "segment"})
    assert cli.main(["verify", str(first), str(second)]) == 1
    captured = capsys.readouterr()
    assert "2 of 2 model packages failed verification" in captured.err
    assert "unknown field 'bogus'" in captured.out and "field 'task'" in captured.out


def test_install_failure_exit_1(roots, tmp_path, capsys):
    archive = tmp_path / "x.zip"
    archive.write_bytes(b"garbage")
    assert cli.main(["install", str(archive), "-sha256", "0" * 64]) == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch of the downloaded archive" in err and len(err.splitlines()) == 1



def test_report_folder_beside_the_packages_is_not_a_package(roots, capsys):
    """models/evaluation/evaluation.json (a report, no network) is neither listed nor verified,
    and `evaluate --models models` takes the same packages (registry.bundled_names)."""
    _, bundled = roots
    write_tiny_package(bundled, "tiny_seg")
    (bundled / "evaluation").mkdir()
    (bundled / "evaluation" / "evaluation.json").write_text("{}")
    assert reg.bundled_names(bundled) == ["tiny_seg"]
    assert cli.main(["list"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == ["tiny_seg"]
    assert cli.main(["verify"]) == 0
    assert capsys.readouterr().out.count("OK") == 1
