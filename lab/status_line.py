"""The demo's one-line status ("calls placed: 12  live: 3 ...") redrawn in place on a terminal.

Only on a terminal: piped into a file or a CI log, carriage returns and escape codes are noise, so
nothing is drawn there (the demo prints its summary and the logs say what happened). On a terminal,
a log line clears the status line first and the status is drawn again below it, so log lines never
start in the middle of the status text.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

CLEAR = "\r\033[K"  # back to column 0, erase to the end of the line


class StatusLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.text = ""
        self.drawn = False

    def show(self, text: str) -> None:
        self.text = text
        self.redraw()

    def redraw(self) -> None:
        if self.enabled and self.text:
            self.stream.write(CLEAR + self.text)
            self.stream.flush()
            self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.drawn = False

    def finish(self) -> None:
        """Leave the status as the last line and move below it (before printing a summary)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
        self.text = ""

    @contextlib.contextmanager
    def above_logs(self, logger: logging.Logger | None = None) -> Iterator[None]:
        """While active, every handler of `logger` (default: root) clears the status line before
        writing a record and draws it again after."""
        logger = logger or logging.getLogger()
        originals = list(logger.handlers)
        wrapped = [_AboveStatus(h, self) for h in originals]
        for h, w in zip(originals, wrapped, strict=True):
            logger.removeHandler(h)
            logger.addHandler(w)
        try:
            yield
        finally:
            for h, w in zip(originals, wrapped, strict=True):
                logger.removeHandler(w)
                logger.addHandler(h)


class _AboveStatus(logging.Handler):
    def __init__(self, inner: logging.Handler, status: StatusLine) -> None:
        super().__init__(inner.level)
        self.inner = inner
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        redraw = self.status.drawn
        self.status.clear()
        self.inner.handle(record)
        if redraw:
            self.status.redraw()
