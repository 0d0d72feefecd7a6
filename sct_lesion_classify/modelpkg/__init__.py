"""Model packages: card schema, verified loading, registry, install and ONNX Runtime sessions.

- :mod:`.card`: ``ModelCard`` (``<name>.json``), validated against ``card.schema.json``.
- :mod:`.package`: ``ModelPackage.load(folder)`` verifies the ONNX file's sha256.
- :mod:`.registry`: ``resolve(name, custom_folder=...)``: custom folder > install cache > bundled.
- :mod:`.download`: ``install(name_or_url, sha256=...)``: verified, atomic, safe extraction.
- :mod:`.session`: ``create_session`` and ``Predictor`` (imports numpy; onnxruntime lazily).
- :mod:`.testing`: tiny packages for tests (imports ``onnx`` lazily; never used at inference).
"""

from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.modelpkg.package import ModelPackage, file_sha256
from sct_lesion_classify.modelpkg.registry import cache_root, bundled_root, load_registry, resolve

__all__ = ["ModelCard", "ModelPackage", "file_sha256", "cache_root", "bundled_root",
           "load_registry", "resolve"]
