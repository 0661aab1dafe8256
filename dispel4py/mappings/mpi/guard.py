"""A guard process beside each MPI rank, so that a rank that dies is reported once.

Why a separate process: under MPICH's hydra, a rank that ends without aborting the run
(``os._exit``, SIGKILL, the OOM killer, a crash) is noticed by the proxy when the rank's
PMI socket closes, or when it reaps a rank killed by a signal; either way it SIGKILLs the
other ranks at once, so no rank can say what happened, and mpiexec prints its "BAD
TERMINATION" banner on stdout. If a helper process of the rank inherited its PMI socket,
the proxy never notices and the run hangs.

The guard holds its own copies of the rank's PMI socket and stdout/stderr (so the proxy
neither sees them close nor reports exit statuses while the guard lives) and watches the
rank through a pidfd, from a session of its own (the proxy's SIGKILL to the rank's
process group spares it). When the rank ends without first telling the guard ``done`` (a
normal end), the guard writes one ``dispel4py: error:`` line naming the rank, its pid,
host and PE instances and how it ended (unless the rank said ``quiet``: it reported its
own failure and aborts the run with the code it gives), waits until the proxy has read
that line, and sends PMI ``abort``: mpiexec then stops every rank and exits with status 1
(or the rank's code), without a banner.

**One report per host.** The report token is an abstract Unix socket name; whoever binds
it first reports, and everyone else on the host stays silent. The rank and its guard
share one socket (created by the rank, inherited by the guard), so a claim by either
lasts until both are gone; and a guard that claimed (or whose rank did) stays until the
other ranks and guards of its host (``peers``) are gone: ranks killed while the run is
torn down are never reported as failures of their own.

**Nothing left in /dev/shm.** MPICH's shared memory (``/dev/shm/mpich_shm_*``) exists from
inside ``MPI_Init`` until the ranks unlink it, once every rank has started (``hydra.py``).
A rank that dies in between (Ctrl-C while a late rank is still starting, a SIGKILL) would
leave it behind: until the rank says ``unlinked``, the guard looks for the segments in the
rank's memory map every few milliseconds, and unlinks those it saw when the rank dies.

This file is also the guard program (``python -I -S guard.py RANK_PID PMI_FD
CONTROL_FD TOKEN_FD TOKEN``) and therefore imports only the standard library. The rank
writes lines on CONTROL_FD: ``who <description>``, ``peers <pid> ...``, ``quiet <code>``,
``unlinked``, ``done``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import termios
import time

__all__ = [
    "NEW",
    "OURS",
    "THEIRS",
    "claim_report",
    "pmi_abort",
    "wait_until_read",
    "exit_status_text",
    "mpich_shm_of",
    "process_start_time",
]

NEW, OURS, THEIRS = "new", "ours", "theirs"  # outcomes of claim_report
_IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # the rank handles these, the guard outlives them
_PEERS_GONE_WITHIN_S = 5.0  # safety net: how long a claiming guard waits for its host's peers
_SCAN_MS = 10  # until the rank has unlinked its MPICH shared memory: how often it is looked for


def claim_report(token_socket: socket.socket, token: str) -> str:
    """Bind the report token: NEW (this process reports), OURS (the rank or its guard, who
    share ``token_socket``, claimed it before) or THEIRS (another process on this host)."""
    try:
        token_socket.bind("\0" + token)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return THEIRS
        if exc.errno == errno.EINVAL:  # this socket is bound already
            return OURS
        return NEW  # no abstract sockets here: report rather than stay silent
    return NEW


def pmi_abort(pmi_fd: int, code: int) -> None:
    """Ask hydra to end the run: mpiexec stops every rank and exits with ``code``.

    The PMI-1 ``abort`` command, which hydra's proxy takes on any PMI socket. MPICH's
    ``MPI_Abort`` sends the same, but first prints its own "Abort(1) on node ..." line.
    """
    try:
        os.write(pmi_fd, f"cmd=abort exitcode={code}\n".encode())
    except OSError:  # the proxy is gone: the run is over already
        pass


def wait_until_read(fd: int, within: float) -> None:
    """Wait until the reader of pipe ``fd`` (hydra's proxy) has taken everything written.

    The proxy forwards a rank's output and its PMI commands over one connection, in the
    order it reads them; if ``abort`` overtook the error line, mpiexec would exit first.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            unread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:  # not a pipe: nothing to wait for
            return
        if unread == 0:
            return
        time.sleep(0.002)


def mpich_shm_of(pid: int | str) -> set[str]:
    """MPICH's ``/dev/shm/mpich_shm_*`` segments that process ``pid`` (or ``"self"``) maps."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return set()
    paths = (line.split(maxsplit=5)[-1].removesuffix(" (deleted)") for line in lines if "/mpich_shm_" in line)
    return {path for path in paths if path.startswith("/dev/shm/mpich_shm_")}


def unlink_all(paths: set[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:  # unlinked already (by a rank), or not ours to remove
            continue


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a process from a later one with the same pid."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def exit_status_text(pid: int, started: str | None) -> str:
    """How process ``pid`` ended, read from its zombie's /proc entry if still there."""
    fields = _stat_fields(pid)
    if not fields or fields[0] != "Z" or fields[19] != started:
        return "ended"
    status = int(fields[-1])
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {number} ({name})"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on, or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


class _Watch:
    """What the guard knows about its rank, from the control lines."""

    def __init__(self, rank_pid: int) -> None:
        self.who = f"an MPI rank (pid {rank_pid})"
        self.peers: list[int] = []
        self.quiet = False
        self.code = 1  # the exit status the run is aborted with
        self.done = False
        self.shm: set[str] = set()  # the rank's MPICH shared memory, while it may still need removing
        self.scanning = True  # until the rank says it unlinked its shared memory
        self._partial = b""

    def take(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            kind, _, text = line.decode(errors="replace").partition(" ")
            if kind == "who":
                self.who = text
            elif kind == "peers":
                self.peers = [int(pid) for pid in text.split()]
            elif kind == "quiet":
                self.quiet = True
                self.code = int(text or 1)
            elif kind == "unlinked":
                self.scanning = False
                self.shm.clear()
            elif kind == "done":
                self.done = True


def _watch(rank_pid: int, control_fd: int) -> _Watch:
    """Follow the control lines until the rank says ``done`` or ends."""
    watch = _Watch(rank_pid)
    try:
        pidfd = os.pidfd_open(rank_pid)
    except ProcessLookupError:
        return watch  # already gone
    except OSError:  # pidfds refused here (a sandbox): nothing to guard with
        watch.done = True
        return watch
    poller = select.poll()
    poller.register(control_fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    while not watch.done:
        ready = {fd for fd, _ in poller.poll(_SCAN_MS if watch.scanning else None)}
        if watch.scanning:
            watch.shm |= mpich_shm_of(rank_pid)
        if control_fd in ready:
            data = os.read(control_fd, 65536)
            watch.take(data)
            if not data:
                poller.unregister(control_fd)
        if pidfd in ready:
            break
    return watch


def _say(line: str) -> None:
    """One line on the rank's stderr, read by the proxy before anything else happens."""
    try:
        os.write(2, f"dispel4py: error: {line}\n".encode())
    except OSError:
        return
    wait_until_read(2, within=1.0)


def _wait_gone(pids: list[int], within: float) -> None:
    """Until every process in ``pids`` has ended (or ``within`` seconds have passed)."""
    poller = select.poll()
    waiting, deadline = 0, time.monotonic() + within
    for pid in pids:
        try:
            poller.register(os.pidfd_open(pid), select.POLLIN)
        except ProcessLookupError:  # gone already
            continue
        waiting += 1
    while waiting and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            poller.unregister(fd)
            waiting -= 1


def main(argv: list[str]) -> int:
    for signum in _IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    rank_pid, pmi_fd, control_fd, token_fd = (int(arg) for arg in argv[1:5])
    token_socket = socket.socket(fileno=token_fd)
    started = process_start_time(rank_pid)
    watch = _watch(rank_pid, control_fd)
    if watch.done:
        return 0
    unlink_all(watch.shm)  # the rank died before it could (the mappings of the others stay valid)
    how = exit_status_text(rank_pid, started)
    claim = claim_report(token_socket, argv[5])
    if claim == THEIRS:  # another process of this host reports and ends the run
        return 0
    if claim == NEW and not watch.quiet:
        _say(f"{watch.who} {how} before the workflow finished; every rank was stopped")
    # again if the rank did (it may have died first): with its code, as mpiexec may take either
    pmi_abort(pmi_fd, watch.code)
    _wait_gone(watch.peers, within=_PEERS_GONE_WITHIN_S)  # holding the token meanwhile
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
