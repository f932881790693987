"""A worker process: started as `python -m convparity.harness.running.worker FD PARENT`, it runs tasks of one pool.

Workers are fresh interpreters started with our own `-m` entry point, never forks of the caller or
multiprocessing spawns: a spawn re-imports the caller's main module, which breaks a script without a
`__main__` guard, a program read from stdin and a notebook. Everything a worker needs comes over its
connection (a socket pair, end FD): its pool and log, then its pickled `prepare`, then one pickled task
at a time; it answers each task with (ok, value or error text, seconds).

Start-up is two steps, so that a worker that cannot start is told from a framework that crashes:
- ALIVE: the interpreter runs and imported convparity; a worker that dies before saying so could not
  start at all (a broken installation, an import path without convparity): the harness's failure.
- READY: its `prepare` (a framework's imports) is done; dying between the two is the backend's crash.

A worker dies with the process that started it (Linux: PR_SET_PDEATHSIG, checked against PARENT), ignores
Ctrl-C and SIGTERM (the runner handles them), and writes its output, and the traceback faulthandler prints
when it dies of a signal, to its log.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from convparity.harness.errors import describe_exception

ALIVE = "alive"
READY = "ready"


def describe_exit(pid: int, exitcode: int | None) -> str:
    """Why a worker process ended, for crash rows: the signal by name, or the exit code."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        text = f"worker {pid} killed by {name} ({signal.strsignal(number)})"
        if number == signal.SIGKILL:
            text += ": killed from outside, often by the out-of-memory killer"
        return text
    return f"worker {pid} exited with code {exitcode}"


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread for the duration: a process started meanwhile inherits the
    block (across exec), so a Ctrl-C cannot interrupt its start-up; here they arrive once unblocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_worker(pool: str, environment: Mapping[str, str], log: str | None, prepare: bytes,
                 spawn: Callable[..., subprocess.Popen] = subprocess.Popen) -> tuple[subprocess.Popen, Connection]:
    """Start a worker of `pool` with `environment` (the whole environment it gets), writing to `log` (or nowhere),
    and send it its pickled `prepare`; returns the process and our end of its connection. The caller waits for
    ALIVE and READY. `spawn` starts the process (a caller may start it from a thread that outlives it)."""
    ours, theirs = socket.socketpair()
    # -P: the working folder is not put first on the path (a checkout's root holds a convparity/ without harness/)
    command = [sys.executable, "-P", "-m", __name__, str(theirs.fileno()), str(os.getpid())]
    try:
        with open(log or os.devnull, "ab") as output, signals_blocked():
            process = spawn(command, pass_fds=(theirs.fileno(),), env=dict(environment), stdin=subprocess.DEVNULL,
                            stdout=output, stderr=output)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    conn = Connection(ours.detach())
    try:
        conn.send_bytes(pickle.dumps((pool, log)))
        conn.send_bytes(prepare)
    except OSError:  # it died at once: the caller finds it dead before ALIVE
        pass
    return process, conn


def import_path() -> str:
    """This process's import path as PYTHONPATH, so a worker imports what this process can (plugins named
    by module path included), led by the folder of the convparity this process imported: a folder earlier on
    the path that holds another `convparity` (a checkout's, whose harness/ is not inside it, put there by
    pytest) must not shadow it."""
    spec = importlib.util.find_spec("convparity")  # this process imported it already: nothing is imported here
    home = str(Path(spec.origin).resolve().parent.parent) if spec is not None and spec.origin else os.getcwd()
    return os.pathsep.join([home, *(path or os.getcwd() for path in sys.path)])


def _die_with_parent(parent: int) -> None:
    """Linux: let the kernel SIGKILL this worker when the runner dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def serve(conn: Connection, pool: str, parent: int, log: str | None, prepare: Callable[[], Any]) -> None:
    """A worker's life: say ALIVE, run `prepare` (a framework's imports), say READY, then run tasks until told to
    stop (None) or orphaned. A `prepare` that raises is left for the first task to meet again.
    Each reply is (ok, value or error text, seconds) for one task."""
    _die_with_parent(parent)
    # Ctrl-C and SIGTERM are the runner's to handle (a terminal sends Ctrl-C to every process of its group):
    # the worker was started with both blocked, so none can interrupt its start-up; now they are ignored.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    faulthandler.enable()  # a segfault or abort leaves its Python traceback in the log
    print(f"[convparity worker {os.getpid()} pool {pool}] started", file=sys.stderr, flush=True)
    conn.send_bytes(pickle.dumps(ALIVE))
    try:
        prepare()
    except Exception as error:  # noqa: BLE001
        print(f"[convparity worker {os.getpid()}] preparing failed: {describe_exception(error)}", file=sys.stderr)
    conn.send_bytes(pickle.dumps(READY))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        started = time.perf_counter()
        try:
            task = pickle.loads(data)
            if task is None:
                return
            reply: tuple[bool, Any] = (True, task())
        except Exception as error:  # noqa: BLE001 - reported to the runner as the task's error
            reply = (False, describe_exception(error))
        seconds = time.perf_counter() - started
        try:
            payload = pickle.dumps((*reply, seconds), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001
            payload = pickle.dumps((False, f"the result could not be sent back: {describe_exception(error)}",
                                    seconds))
        conn.send_bytes(payload)


def main(argv: list[str]) -> None:
    """A worker: read its pool, log and pickled `prepare` from the connection on fd argv[1], then serve tasks."""
    fd, parent = int(argv[1]), int(argv[2])
    conn = Connection(fd)
    pool, log = pickle.loads(conn.recv_bytes())
    prepare_bytes = conn.recv_bytes()

    def prepare() -> Any:  # unpickled here, after ALIVE, so that a missing module is reported like any failure
        step = pickle.loads(prepare_bytes)
        return None if step is None else step()

    serve(conn, pool, parent, log, prepare)


if __name__ == "__main__":
    main(sys.argv)
