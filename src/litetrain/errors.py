"""Exceptions that litetrain raises, and the exit codes the CLI maps them to.

A ``LitetrainError`` is the user's problem (a missing file, data that does not fit the model, a layer that
cannot be made builtin-only): the CLI prints its message and hint, no traceback, and exits with its
``exit_code``. Anything else that escapes is a bug in litetrain and keeps its traceback.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``litetrain`` command (documented in the README)."""

    OK = 0
    """The command succeeded; for ``check``/``compare``/``demo`` the verdict passed."""
    VERDICT_FAILED = 1
    """The twins were compared and the verdict is one that fails (``inconsistent`` by default)."""
    USER_ERROR = 2
    """Usage or input error: bad arguments, missing/corrupt files, data that does not match the model."""
    RUNTIME_UNAVAILABLE = 3
    """The model is valid but this machine cannot run it (e.g. Flex ops in a desktop interpreter)."""
    EVERY_MODE_FAILED = 4
    """``quantize``: no requested mode could be measured (each failed or was refused); the JSON is still written."""
    INTERNAL_ERROR = 70
    """A bug in litetrain (EX_SOFTWARE); a traceback is printed."""


class LitetrainError(Exception):
    """A user-facing error: says what was received and what to do about it.

    Args:
        message: What went wrong, naming the received value.
        hint: What the user can do about it; printed on its own line.
        detail: A tool's full output behind the message (the converter's MLIR diagnostics); the CLI prints it
            only with ``--verbose``.
    """

    exit_code: ExitCode = ExitCode.USER_ERROR

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  What to do: {self.hint}"
        return self.message


class UsageError(LitetrainError):
    """Arguments that do not make sense together or have invalid values."""


class ModelLoadError(LitetrainError):
    """A model file, SavedModel directory or factory could not be loaded."""


class DataError(LitetrainError):
    """Data that is missing, corrupt, non-finite, or does not match the model or the loss."""


class SignatureError(LitetrainError):
    """A model lacks the signatures, inputs or outputs of litetrain's signature convention."""


class UnsupportedModelError(LitetrainError):
    """A model that litetrain cannot make trainable (e.g. a layer with no builtin-only gradient)."""


class ConversionError(LitetrainError):
    """TFLite conversion failed or produced a model that is not faithful (e.g. uninitialized variables)."""


class RuntimeUnavailableError(LitetrainError):
    """The model is valid but the available interpreter cannot run it."""

    exit_code = ExitCode.RUNTIME_UNAVAILABLE


class RuntimeCrashError(LitetrainError):
    """The isolated interpreter process died (a signal such as SIGSEGV or SIGABRT, or an unexpected exit).

    litetrain itself survives; the message names the signal and the last lines the process wrote to stderr.
    """

    exit_code = ExitCode.RUNTIME_UNAVAILABLE


class MissingDependencyError(LitetrainError):
    """An optional or required package is not installed."""

    exit_code = ExitCode.RUNTIME_UNAVAILABLE


class InternalError(RuntimeError):
    """A bug in litetrain: an invariant that should hold did not. Not a user error."""
