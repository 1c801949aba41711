"""Error classes shared by the CLI and the library.

Each class maps to its own process exit code so scripts can tell *why* a run failed.
"""


class StprError(Exception):
    """Base class: a problem we can describe to the user in one line."""

    exit_code = 1


class UsageError(StprError):
    """Bad command-line arguments or option combinations."""

    exit_code = 2


class InputError(StprError):
    """The input file/folder is missing, unreadable or holds no usable frames."""

    exit_code = 3


class ModelError(StprError):
    """The weights file is missing, corrupt, or does not match the architecture."""

    exit_code = 4


class OutputError(StprError):
    """The output cannot be written (exists, unwritable directory, disk full...)."""

    exit_code = 5
