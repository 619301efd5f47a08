"""A command run in-process (`setup_logging`) must not leave its handler on the root logger
for the tests after it: that handler writes to a captured stderr pytest has closed, and its
repeat counter reports another test's warnings into the next one (seen as a flaky
`caplog.messages` count)."""

import logging

from bridge.runtime.logs import JsonFormatter, TextFormatter, setup_logging


def test_a_command_installs_the_bridge_handler() -> None:
    setup_logging("INFO")
    assert any(isinstance(h.formatter, TextFormatter) for h in logging.getLogger().handlers)


def test_the_next_test_does_not_inherit_it() -> None:
    formatters = [handler.formatter for handler in logging.getLogger().handlers]
    assert not any(isinstance(f, TextFormatter | JsonFormatter) for f in formatters)
