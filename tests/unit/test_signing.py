"""Signed pickles (dynamic/signing.py): only what this run's key sealed is ever unpickled."""

from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest

from dispel4py.dynamic.signing import Forged, Idents, Seen, Signer, load_key, new_key

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


def test_a_payload_is_bound_to_its_run_and_its_identity() -> None:
    key = new_key()
    ours, theirs = Signer(key, b"run-1"), Signer(key, b"run-2")  # one key file, two runs
    mac, data = ours.dumps(b"q:A:0", [1, 2], b"s:1")
    assert ours.loads(b"q:A:0", mac, data, b"s:1") == [1, 2]
    for signer, ident in ((theirs, b"s:1"), (ours, b"s:2"), (ours, b""), (Signer(key), b"s:1")):
        with pytest.raises(Forged):
            signer.loads(b"q:A:0", mac, data, ident)
    assert ours.for_run(b"run-2").mac(b"q:A:0", data, b"s:1") == theirs.mac(b"q:A:0", data, b"s:1")


def test_identities_are_unique_per_process_and_increase() -> None:
    first, second = Idents(), Idents()
    made = [first.next() for _ in range(3)] + [second.next() for _ in range(3)]
    assert len(set(made)) == 6 and first.sender != second.sender
    assert [int(i.rpartition(b":")[2]) for i in made[:3]] == [1, 2, 3]


def test_seen_accepts_each_identity_once_in_any_order() -> None:
    import random

    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    seen = Seen()
    idents = [b"%s:%d" % (sender, n) for sender in (b"aa", b"bb") for n in range(1, 200)]
    stream = idents + rng.sample(idents, 100)  # every identity, then copies of some
    rng.shuffle(stream)
    accepted = [i for i in stream if seen.first_use(i)]
    assert sorted(accepted) == sorted(idents)
    assert all(i in seen for i in idents) and b"aa:500" not in seen
    for bad in (b"", b"no-sequence", b"aa:x", None):
        assert not seen.first_use(bad)
