"""One exception family for the whole tool, so that cli.py alone maps failures to exit codes.

Every message is one line that names the thing and says what to do; third-party exceptions are translated
where they enter (in the adapter modules), never shown raw to a user.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes that Jenkins shell steps read (see README, "Exit codes")."""

    OK = 0
    FAILED = 1
    USAGE = 2
    BELOW_THRESHOLD = 3
    BUDGET_SPENT = 4
    #: `mlops retrain`: tweak proposed no attempt (the threshold is met or the budget is spent); job 5 then
    #: notifies and ends UNSTABLE with the same code
    NOTHING_PROPOSED = 5
    INTERNAL = 70
    #: the reader of the output went away (`mlops status | head`); what the command did stands (128 + SIGPIPE, as a
    #: tool killed by the signal would end)
    OUTPUT_CLOSED = 141
    #: between `mlops train` and its harness only: the workspace was already training, nothing ran
    HARNESS_BUSY = 75


class MlopsError(Exception):
    """Base class: a one-line message, an optional hint, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MlopsError):
    """Bad flags, bad configuration or bad input the user can fix: exit 2."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """mlops.yaml or the environment is invalid."""


class WorkspaceError(MlopsError):
    """The workspace is missing pieces, busy, or unreadable."""


class WorkspaceBusy(WorkspaceError):
    """Another training of the same workspace is running."""


class GitError(MlopsError):
    """Cloning or fetching the model repository failed."""


class DetectError(UsageError):
    """The model code cannot be read or has no trainable script."""


class UnsupportedFramework(DetectError):
    """The script trains with a framework we ship no image for."""


class RewriteError(UsageError):
    """A script cannot be changed as a tweak move asks (value computed, estimator built elsewhere...): the
    message says where and why, the hint how to make it tunable."""


class UnsafeSource(DetectError, RewriteError):
    """A pushed file cannot be read or parsed safely: a link out of the checkout, a device, too large, too deeply
    nested. Exit 2; a DetectError to detect and a RewriteError to the rewriters, so both handle it as theirs."""


class TrainingFailed(MlopsError):
    """The user's script crashed, or the training process died."""


class MetricError(MlopsError):
    """The metric to compare is missing or not a number."""


class RunnerError(MlopsError):
    """The runner (local process or Docker engine) could not start or watch training."""


class NotifyError(MlopsError):
    """A notification channel refused the message."""


class JenkinsError(MlopsError):
    """The Jenkins server refused or could not be reached."""
