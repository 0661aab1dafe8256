"""The man page rendered from the CLI parser with argparse-manpage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argparse_manpage.manpage import Manpage

from dispel4py.cli import get_parser
from dispel4py.cli.args import COMMANDS as COMMAND_LINES

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


COMMANDS = ("worker", "status", "replay", "plan", "draw")


def test_help_and_manpage_list_every_command_with_one_line():
    """``dispel4py --help`` and the man page name every command besides running a workflow,
    each on a line of its own, and each answers ``--help``."""
    done = subprocess.run(
        [sys.executable, "-m", "dispel4py", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    page = _normalise(str(Manpage(get_parser())))
    listed = [x.strip() for x in COMMAND_LINES.splitlines() if x.startswith("  ")]
    assert [x.split()[0] for x in listed] == list(COMMANDS)  # one line each, no other
    for line in listed:
        assert line in [x.strip() for x in done.stdout.splitlines()], done.stdout
        assert line in [x.strip() for x in page.splitlines()], page[-800:]
    for command in COMMANDS:
        sub = subprocess.run(
            [sys.executable, "-m", "dispel4py", command, "--help"], capture_output=True, text=True, timeout=30
        )
        assert sub.returncode == 0 and "usage: dispel4py" in sub.stdout, (command, sub.stderr)
