"""Signed pickles (dynamic/signing.py): only what this run's key sealed is ever unpickled."""

from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest

from dispel4py.dynamic.signing import Forged, Signer, load_key, new_key

pytestmark = pytest.mark.timeout(10)


def test_values_round_trip_with_their_types() -> None:
    signer = Signer(new_key())
    value = [(1, "a"), np.float64(2.5), {1, 2}, b"\x00"]
    mac, data = signer.dumps(b"q:A:0", value)
    got = signer.loads(b"q:A:0", mac, data)
    assert got[:2] == value[:2] and type(got[0]) is tuple and type(got[1]) is np.float64


@pytest.mark.parametrize("case", ["unsigned", "forged", "other key", "other scope", "tampered"])
def test_a_payload_not_sealed_by_this_key_for_this_scope_is_refused_unread(case: str) -> None:
    signer = Signer(new_key())
    good_mac, good_data = signer.dumps(b"q:A:0", 1)
    evil = b"\x80\x05" + pickle.dumps(1)[2:]  # any bytes: never unpickled unless the MAC matches
    mac, data, scope = {
        "unsigned": (None, evil, b"q:A:0"),
        "forged": (b"x" * 32, evil, b"q:A:0"),
        "other key": (Signer(new_key()).mac(b"q:A:0", evil), evil, b"q:A:0"),
        "other scope": (good_mac, good_data, b"q:B:0"),
        "tampered": (good_mac, good_data + b".", b"q:A:0"),
    }[case]
    with pytest.raises(Forged):
        signer.loads(scope, mac, data)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Signer(b"short")


def test_the_driver_makes_a_private_key_file_and_workers_read_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DISPEL4PY_KEY", raising=False)
    path = tmp_path / "run.key"
    made = load_key(str(path), create=True)
    assert made and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(str(path), create=False) == made
    with pytest.raises(FileNotFoundError):
        load_key(str(tmp_path / "missing"), create=False)
    assert load_key(None, create=True) is None
    monkeypatch.setenv("DISPEL4PY_KEY", "k" * 20)
    assert load_key(None, create=False) == b"k" * 20


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604])
def test_a_key_file_others_can_read_is_refused_like_ssh_refuses_a_private_key(
    tmp_path, mode: int, monkeypatch
) -> None:
    monkeypatch.delenv("DISPEL4PY_KEY", raising=False)
    path = tmp_path / "run.key"
    path.write_text("a shared secret of the two hosts\n")
    os.chmod(path, mode)
    for create in (True, False):  # the driver and a worker alike
        with pytest.raises(ValueError) as info:
            load_key(str(path), create=create)
        text = str(info.value)
        assert f"permissions {mode:04o} for {path} are too open" in text, text
        assert f"chmod 600 {path}" in text, text


def test_a_key_file_only_its_owner_can_read_is_accepted(tmp_path) -> None:
    path = tmp_path / "run.key"
    path.write_text("a shared secret of the two hosts\n")
    for mode in (0o600, 0o400):
        os.chmod(path, mode)
        assert load_key(str(path), create=False) == b"a shared secret of the two hosts"
