"""The check that an output file can be written, as every MPI rank runs it at once."""

from __future__ import annotations

import argparse
import builtins
from pathlib import Path

import pytest

from dispel4py.cli import observe as cli_observe
from dispel4py.errors import UsageError


def _args(**files: str | None) -> argparse.Namespace:
    base = {"progress_interval": None, "log_format": None, "output_json": None, "stats_json": None}
    return argparse.Namespace(**{**base, "log_file": None, **files})


def test_a_file_another_rank_removed_meanwhile_is_fine(tmp_path: Path, monkeypatch) -> None:
    """Rank 1 sees no file, creates it, and rank 0 (which also created it) removes it
    before rank 1 does: that raised FileNotFoundError before MPI started, and the other
    ranks waited in MPI_Init forever."""
    stats = tmp_path / "stats.json"

    def open_then_lose_it(path, *args, **kwargs):
        handle = builtins.open(path, *args, **kwargs)  # noqa: SIM115 - returned to the with
        Path(path).unlink()  # the other rank's clean-up
        return handle

    monkeypatch.setattr(cli_observe, "open", open_then_lose_it, raising=False)
    cli_observe.check_observation_arguments(_args(stats_json=str(stats)))
    assert not stats.exists()


def test_a_file_that_exists_is_kept(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    stats.write_text("old")
    cli_observe.check_observation_arguments(_args(stats_json=str(stats)))
    assert stats.read_text() == "old"


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"the folder .*missing does not exist"):
        cli_observe.check_observation_arguments(_args(stats_json=str(tmp_path / "missing" / "s.json")))
