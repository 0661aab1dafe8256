"""The man page rendered from the CLI parser with argparse-manpage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argparse_manpage.manpage import Manpage

from dispel4py.cli import get_parser

pytestmark = pytest.mark.timeout(60)

COMMON = ("-i", "-d", "-f", "-a", "--iter", "--data", "--file", "--attr", "--list-mappings")


def _normalise(text: str) -> str:
    # roff escapes hyphens as \-
    return text.replace("\\-", "-")


def test_parser_has_common_and_mapping_options():
    options = {s for action in get_parser()._actions for s in action.option_strings}
    assert set(COMMON) <= options
    assert "--num" in options


def test_manpage_from_parser_object():
    page = _normalise(str(Manpage(get_parser())))
    assert ".TH" in page
    for flag in COMMON:
        assert flag in page, flag
    assert "--num" in page


def test_manpage_command_line_tool():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from argparse_manpage.cli import main; sys.exit(main())",
            "--module",
            "dispel4py.cli",
            "--function",
            "get_parser",
            "--project-name",
            "dispel4py",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page = _normalise(done.stdout)
    assert page.startswith(".TH") or "\n.TH" in page
    for flag in ("-i", "-d", "-f", "-a", "--num"):
        assert flag in page, flag
