"""Model packages, the format: card schema, verified loading, registry and install.

- :mod:`.card`: ``ModelCard`` (``<name>.json``), validated against ``card.schema.json``.
- :mod:`.package`: ``ModelPackage.load(folder)`` verifies the ONNX file's sha256.
- :mod:`.registry`: ``resolve(name, custom_folder=...)``: custom folder > install cache > bundled.
- :mod:`.download`: ``install(name_or_url, sha256=...)``: verified, atomic, safe extraction.
- :mod:`.testing`: tiny packages for tests (imports ``onnx`` lazily; never used at inference).

Running a package (ONNX Runtime sessions, sagittal slices, tiles) is :mod:`sct_lesion_classify.runtime`.
"""

from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.modelpkg.package import ModelPackage, file_sha256
from sct_lesion_classify.modelpkg.registry import cache_root, bundled_root, load_registry, resolve

__all__ = ["ModelCard", "ModelPackage", "file_sha256", "cache_root", "bundled_root",
           "load_registry", "resolve"]
