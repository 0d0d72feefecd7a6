"""Exceptions that the commands turn into exit codes (SPEC section 2).

Library code raises these with a one-line message that names the file and the problem; the
command frame (``cli.frame``) prints the message and exits with ``exit_code``.
:func:`require_training_extras` is the one check that MONAI and PyTorch are installed.
"""


class LesionClassifyError(Exception):
    """Base class of the package's errors."""

    exit_code = 1


class InputError(LesionClassifyError):
    """Unusable input: missing, unreadable or invalid file, or an invalid option value (exit 2)."""

    exit_code = 2


class ModelError(LesionClassifyError):
    """A model package that is missing, invalid or fails verification (exit 1)."""

    exit_code = 1


class ProcessingError(LesionClassifyError):
    """A failure at run time, for example an output that cannot be written (exit 1)."""

    exit_code = 1


def require_training_extras(needed_by: str, unless: str = "") -> None:
    """Raise :class:`InputError` (one line) when MONAI or PyTorch, the ``[train]`` extras, cannot be
    imported: ``"<needed_by> needs MONAI and PyTorch (<module> is not installed: pip install ...)"``
    followed by ``unless`` (e.g. ``"; the realistic style does not"``). SCT's environment has
    neither."""
    try:
        import monai.transforms  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or "monai").split(".")[0]
        raise InputError(f"{needed_by} needs MONAI and PyTorch ({missing} is not installed: "
                         f"pip install 'sct_lesion_classify[train]'){unless}") from None
