"""Checks that an error message is one line naming the problem: shared by the error tests."""

from __future__ import annotations

import pytest


def one_line_message(excinfo, *needles: str) -> str:
    """The message of a caught exception, asserted to be one line containing every needle."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def one_line_value_error(call, *args, match: str, **kwargs) -> str:
    """Call, expect a ValueError matching ``match`` whose message is one line; return it."""
    with pytest.raises(ValueError, match=match) as info:
        call(*args, **kwargs)
    return one_line_message(info)


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """A CLI call ended with exit status 2 and one ``rnnkit: error:`` line holding every fragment."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], err
