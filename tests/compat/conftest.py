"""Tests that real scripts keep working: the original's modules, CLI habits and output.

The shared fixtures (``run_cli``, ``fresh_ids``) come from ``tests/conftest.py``; this adds
``write_workflow`` for workflow files written by a test.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

WriteWorkflow = Callable[[str, str], Path]


@pytest.fixture
def write_workflow(tmp_path) -> WriteWorkflow:
    """``write_workflow("name", source)`` writes ``tmp_path/name.py`` (dedented) and returns it."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    return write
