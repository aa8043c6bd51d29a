"""Run a command so that SIGTERM, SIGINT and SIGHUP stop it and everything it started, in seconds.

``scripts/start.sh`` runs ``dagster dev`` through this. A command started in the background by a
shell (``scripts/start.sh &``, ``nohup``) begins with SIGINT ignored, and an ignored signal stays
ignored across ``exec``; ``dagster dev`` then maps SIGTERM to the same (ignored) handler, so
neither signal stopped it. Here the child starts with the default dispositions (this process
handles the signals itself, and handled signals are reset on ``exec``) in a process group of its
own. On a signal it gets SIGINT, its clean shutdown path (webserver, daemon and code servers
stopped through their shutdown pipes); whatever of the group is still alive after ``--grace``
seconds is killed.

Usage: ``python scripts/supervise.py [--grace SECONDS] -- COMMAND [ARGS...]``
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def supervise(command: list[str], grace_s: float) -> int:
    """Run ``command`` until it exits or a stop signal arrives; its exit status (0 after a stop)."""
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    child = subprocess.Popen(command, start_new_session=True)
    pgid = child.pid
    while child.poll() is None and not stop_requested:
        try:
            child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
    if not stop_requested:
        return child.returncode
    print(
        f"supervise: signal {signal.Signals(stop_requested[0]).name}: stopping {command[0]} "
        f"(what is left after {grace_s:g} s is killed)",
        file=sys.stderr,
        flush=True,
    )
    try:
        os.kill(child.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (child.poll() is None or _group_alive(pgid)):
        time.sleep(0.1)
    if child.poll() is None or _group_alive(pgid):
        print("supervise: still running after the grace period: killing its process group", file=sys.stderr, flush=True)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=15.0, help="seconds before the group is killed")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    return supervise(command, args.grace)


if __name__ == "__main__":
    sys.exit(main())
