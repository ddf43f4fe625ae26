"""The one error type users see: a single line naming the culprit, then exit 2."""


class SpikeinError(Exception):
    """A user-facing problem (bad config, bad input file, corrupt output).

    The CLI prints ``spikein: error: <message>`` and exits non-zero; the message
    must fit on one line and name the setting, file or line at fault.
    """
