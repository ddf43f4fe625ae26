"""Whether to draw progress bars: only on a terminal. In a log file a bar's carriage returns
become noise; the stages print one line per event there instead."""
from __future__ import annotations

import sys
from typing import TextIO


def show_bars(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr, where tqdm draws) is a terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
