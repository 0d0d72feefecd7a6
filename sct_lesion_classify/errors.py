"""Exceptions that the commands turn into exit codes (SPEC section 2).

Library code raises these with a one-line message that names the file and the problem; the
command frame (``cli.frame``) prints the message and exits with ``exit_code``.
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
