"""The progress protocol (simjob_operator.core.progress): the newest valid
``SIMJOB_PROGRESS {json}`` line of a log wins; anything else is ignored, never an error.
"""

from __future__ import annotations

import pytest

from simjob_operator.core.progress import MESSAGE_LIMIT, ProgressReport, last_progress, parse_line


def test_the_newest_valid_line_wins() -> None:
    log = "\n".join(
        [
            "starting",
            'SIMJOB_PROGRESS {"percent": 10, "message": "step 100 of 1000"}',
            "some output",
            'SIMJOB_PROGRESS {"percent": 42.5, "message": "step 425 of 1000"}',
            "SIMJOB_PROGRESS {not json",
        ]
    )
    assert last_progress(log) == ProgressReport(42.5, "step 425 of 1000")
    assert last_progress("no progress here\n") is None


@pytest.mark.parametrize(
    "line",
    [
        'SIMJOB_PROGRESS {"message": "no percent"}',
        'SIMJOB_PROGRESS {"percent": "50"}',
        'SIMJOB_PROGRESS {"percent": true}',
        "SIMJOB_PROGRESS [50]",
        'SIMJOB_PROGRESS {"percent": NaN}',
        ' SIMJOB_PROGRESS {"percent": 5}',
        'simjob_progress {"percent": 5}',
    ],
)
def test_malformed_lines_are_ignored(line: str) -> None:
    assert parse_line(line) is None


def test_values_are_bounded_and_cleaned() -> None:
    assert parse_line('SIMJOB_PROGRESS {"percent": 250}') == ProgressReport(100.0, "")
    assert parse_line('SIMJOB_PROGRESS {"percent": -3}') == ProgressReport(0.0, "")
    long = parse_line('SIMJOB_PROGRESS {"percent": 1, "message": "' + "x" * 1000 + '"}')
    assert long is not None
    assert len(long.message) == MESSAGE_LIMIT
    control = parse_line('SIMJOB_PROGRESS {"percent": 1, "message": "a\\u0000b\\nc"}')
    assert control == ProgressReport(1.0, "a b c")
