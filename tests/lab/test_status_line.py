"""The demo's status line: drawn in place only on a terminal, and never glued to a log line."""

from __future__ import annotations

import io
import logging

from lab.status_line import CLEAR, StatusLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def logger_to(stream: io.StringIO) -> logging.Logger:
    log = logging.getLogger(f"test-status-{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    return log


def test_on_a_terminal_a_log_line_starts_on_a_cleared_line_and_the_status_comes_back_below() -> None:
    term = Terminal()
    status = StatusLine(term)
    log = logger_to(term)
    with status.above_logs(log):
        status.show("calls placed: 1")
        log.info("recording stored")
        status.show("calls placed: 2")
    status.finish()
    assert term.getvalue() == (
        f"{CLEAR}calls placed: 1"
        f"{CLEAR}INFO recording stored\n"  # the status text is erased before the log line
        f"{CLEAR}calls placed: 1"  # and drawn again under it
        f"{CLEAR}calls placed: 2\n"
    )
    # What a reader sees: each log line alone on its line.
    screen = [line.rsplit(CLEAR, 1)[-1] for line in term.getvalue().split("\n")]
    assert screen == ["INFO recording stored", "calls placed: 2", ""]


def test_off_a_terminal_no_status_line_and_logs_untouched() -> None:
    pipe = io.StringIO()  # a file, a pipe, a CI log
    status = StatusLine(pipe)
    log = logger_to(pipe)
    with status.above_logs(log):
        status.show("calls placed: 1")
        log.info("recording stored")
        status.show("waiting for finalize")
    status.finish()
    assert pipe.getvalue() == "INFO recording stored\n"


def test_the_wrapped_handlers_keep_their_level_and_are_restored() -> None:
    term = Terminal()
    status = StatusLine(term)
    log = logger_to(term)
    log.setLevel(logging.DEBUG)
    original = log.handlers[0]
    original.setLevel(logging.WARNING)
    with status.above_logs(log):
        log.info("not shown: below the handler's level")
        log.warning("shown")
    assert log.handlers == [original]
    assert term.getvalue() == "WARNING shown\n"
