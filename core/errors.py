"""The errors users see: a single line naming the culprit, then exit 2.

Every user-facing problem is a ``SpikeinError`` (the CLI catches that one type); the
subclasses say whose move it is, for callers that react differently (a sweep skips a
point with bad input but stops on a broken environment) and for tests that pin the cause.
"""


class SpikeinError(Exception):
    """A user-facing problem (bad config, bad input file, corrupt output).

    The CLI prints ``spikein: error: <message>`` and exits non-zero; the message
    must fit on one line and name the setting, file or line at fault.
    """


class ConfigError(SpikeinError):
    """A config key is unknown, of the wrong type or out of range, or keys contradict."""


class InputDataError(SpikeinError):
    """A benchmark or corpus file is missing or malformed (the message gives file:line)."""


class CorruptOutputError(SpikeinError):
    """Something spikein wrote earlier is truncated, inconsistent or from another config."""


class EnvironmentProblem(SpikeinError):
    """The machine, a model source or a launcher is not as the run needs it."""


class Preempted(SpikeinError):
    """A scheduler's signal (SIGTERM, SIGUSR1) stopped training after a complete checkpoint:
    rerunning the same command continues exactly. The CLI exits with ``exit_code``."""

    exit_code = 75  # EX_TEMPFAIL: "try again"; documented in README (Preemption)
