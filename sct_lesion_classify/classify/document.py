"""The diagnosis JSON document: validated against the shipped schema before it is written."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io.atomic import write_json_atomic

SCHEMA_VERSION = "1"
SCHEMA_PATH = Path(__file__).with_name("diagnosis.schema.json")
DISCLAIMER = (
    "Research use only. sct_lesion_classify is not a medical device and must not be used for "
    "diagnosis or treatment decisions."
)
SYNTHETIC_WARNING = (
    "model {name} {version} was trained on synthetic phantoms only (no patient data): its output "
    "shows that the pipeline runs, not a diagnosis"
)


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def validation_errors(document: dict) -> list[str]:
    """Every way ``document`` breaks the diagnosis schema, as ``path: message`` lines."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def write_diagnosis(path: str | Path, document: dict) -> None:
    """Validate ``document`` against the schema, then write it atomically to ``path``.

    Raises
    ------
    ProcessingError
        If the document breaks the schema (nothing is written) or cannot be written.
    """
    problems = validation_errors(document)
    if problems:
        raise ProcessingError(f"{path}: diagnosis JSON breaks its schema ({problems[0]}); nothing written")
    try:
        write_json_atomic(path, document)
    except OSError as exc:
        raise ProcessingError(f"{path}: cannot write ({exc.strerror or exc})") from exc
