"""``agentpulse run``: record any command (a shell script, a Node agent, a CLI) as a cron run or a session.

The command runs with this terminal's stdin and stdout; its stderr is passed
through as it comes, and its last lines are kept. When it exits non-zero an
``event`` named ``command failed`` carries the exit status and the stderr tail
(redacted like captured text), and the run ends in ``error``. The command's
exit status is ``agentpulse run``'s own (128 + N when it died of signal N).
A broken AgentPulse configuration never stops the command: it then runs
unrecorded, with a warning.

``claude -p ... --output-format json`` (or ``stream-json``) is read on the
way through: the usage and cost Claude Code reports become an ``llm_call`` of
the run (``agentpulse.integrations.claude_code``).

Example::

    $ agentpulse run --cron nightly-backup --schedule "0 3 * * *" --max-runtime 1800 -- ./backup.sh
    $ agentpulse run --session weekly-report -- node report.js
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["CommandFailed", "register", "run", "run_command"]

#: How much of the command's stderr is kept for the failure event.
TAIL_LINES = 40
TAIL_CHARS = 4000


class CommandFailed(Exception):
    """The wrapped command exited with a non-zero status (the run's recorded error)."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register(subparsers: Any) -> None:
    """Add the ``run`` command."""
    p = subparsers.add_parser(
        "run",
        help="run a command as a recorded cron run or session: exit status, duration, stderr tail",
        description=(
            "Run COMMAND and record it: with --cron as a run of that cron monitor (check-ins, schedule, "
            "max-runtime watchdog), otherwise as a session. The command's exit status is passed on."
        ),
        usage="agentpulse run [--cron NAME [--schedule CRON] [--timezone TZ] [--max-runtime S] [--grace S]]"
        " [--session NAME] -- COMMAND [ARG ...]",
    )
    p.add_argument("--cron", metavar="NAME", help="record the command as a run of this cron monitor")
    p.add_argument("--schedule", metavar="CRON", help="the monitor's cron expression, e.g. '0 3 * * *'")
    p.add_argument(
        "--timezone", metavar="TZ", default="UTC", help="IANA timezone of the schedule (default UTC)"
    )
    p.add_argument(
        "--max-runtime", metavar="S", type=float, help="seconds a run may take before it is reported"
    )
    p.add_argument(
        "--grace", metavar="S", type=float, help="seconds a run may start late before it is missed"
    )
    p.add_argument(
        "--session", metavar="NAME", help="session name when not a cron run (default: the command)"
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``args.command``; returns its exit status (2 on a usage error)."""
    argv = list(args.command or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("agentpulse run: no command given (agentpulse run [options] -- COMMAND ...)\n")
        return 2
    if args.cron is None and (args.schedule or args.max_runtime is not None or args.grace is not None):
        sys.stderr.write("agentpulse run: --schedule, --max-runtime and --grace need --cron NAME\n")
        return 2
    try:
        return run_command(
            argv,
            cron=args.cron,
            schedule=args.schedule,
            timezone=args.timezone,
            max_runtime=args.max_runtime,
            grace=args.grace,
            session=args.session,
        )
    except ValueError as exc:
        sys.stderr.write(f"agentpulse run: {exc}\n")
        return 2


def run_command(
    argv: Sequence[str],
    *,
    cron: Optional[str] = None,
    schedule: Optional[str] = None,
    timezone: str = "UTC",
    max_runtime: Optional[float] = None,
    grace: Optional[float] = None,
    session: Optional[str] = None,
) -> int:
    """Run ``argv`` as a recorded cron run (``cron``) or session; returns the command's exit status.

    Raises ``ValueError`` for a bad schedule or timezone, before the command
    starts.

    Example::

        code = run_command(["./backup.sh"], cron="backup", schedule="0 3 * * *")
    """
    import agentpulse
    from agentpulse.config import ConfigError

    name = cron or session or os.path.basename(argv[0]) or "command"
    scope: Any = (
        agentpulse.cron(cron, schedule, timezone=timezone, max_runtime=max_runtime, grace=grace)
        if cron is not None
        else agentpulse.session(name)
    )
    options: Dict[str, Any] = {"auto_patch": False}
    if not os.environ.get("AGENTPULSE_AGENT_NAME"):
        options["agent_name"] = name
    started = agentpulse.get_client() is None
    try:
        agentpulse.init(**options)
    except ConfigError as exc:
        sys.stderr.write(f"agentpulse run: not recording ({exc})\n")
    try:
        with scope as handle:
            handle.set_metadata(command=list(argv))
            code = _execute(argv, handle)
    except CommandFailed as exc:
        code = exc.exit_code
    finally:
        if started:
            agentpulse.shutdown()
    return code


def _execute(argv: Sequence[str], handle: Any) -> int:
    """Run the command with stderr passed through; raise ``CommandFailed`` on a non-zero exit."""
    fmt = _claude_output_format(argv)
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE if fmt else None, stderr=subprocess.PIPE)
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        message = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        sys.stderr.write(f"agentpulse run: {message}\n")
        handle.set_metadata(exit_code=code)
        handle.log("command failed", exit_code=code, stderr_tail=message)
        raise CommandFailed(code, message) from None
    reader = _read_claude_output(proc, fmt) if fmt else None
    previous = _forward_sigterm(proc)
    tail = bytearray()
    interrupted = False
    try:
        stream = proc.stderr
        assert stream is not None
        fd = stream.fileno()
        out = getattr(sys.stderr, "buffer", None)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the command too: wait for it to finish and record that.
                interrupted = True
                continue
            if not chunk:
                break
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stderr.write(chunk.decode("utf-8", errors="replace"))
            tail += chunk
            if len(tail) > 4 * TAIL_CHARS:
                del tail[: len(tail) - 2 * TAIL_CHARS]
        stream.close()
        while True:
            try:
                raw = proc.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
    finally:
        _restore_sigterm(previous)
    if reader is not None:
        _record_claude_call(handle, reader)
    code = 128 - raw if raw < 0 else raw
    if interrupted and code == 0:
        code = 130
    handle.set_metadata(exit_code=code)
    if code != 0:
        text = _tail_text(bytes(tail))
        handle.log("command failed", exit_code=code, stderr_tail=text)
        raise CommandFailed(code, f"{os.path.basename(argv[0])} exited with status {code}")
    return code


# -- Claude Code: its own report of tokens and cost becomes an llm_call of the run --------------


def _claude_output_format(argv: Sequence[str]) -> Optional[str]:
    try:
        from ..integrations.claude_code import output_format
    except ImportError:
        return None
    try:
        return output_format(argv)
    except Exception:
        return None


def _read_claude_output(proc: subprocess.Popen[bytes], fmt: str) -> Any:
    """Pass the command's stdout through while the Claude Code reader reads it (on its own thread)."""
    from ..integrations.claude_code import tee

    assert proc.stdout is not None
    return tee(proc.stdout, getattr(sys.stdout, "buffer", None), fmt)


def _record_claude_call(handle: Any, reader: Any) -> None:
    from .._internal import capture_internal_errors
    from ..context import new_span_id

    data = reader.result()
    client, span = getattr(handle, "_client", None), getattr(handle, "span", None)
    if not data or client is None or span is None:
        return
    with capture_internal_errors("run.claude_code"):
        client.guards.after_call(data, span)
        client.emit("llm_call", data, span, own_span_id=new_span_id(), ts=span.start_ts)


def _tail_text(raw: bytes) -> str:
    lines: List[str] = raw.decode("utf-8", errors="replace").splitlines()[-TAIL_LINES:]
    text = "\n".join(lines)
    return text[-TAIL_CHARS:]


def _forward_sigterm(proc: subprocess.Popen[bytes]) -> Any:
    # cron and supervisors stop a job with SIGTERM: pass it on, then record how the command ended.
    if not hasattr(signal, "SIGTERM"):
        return None
    try:

        def forward(signum: int, frame: Any) -> None:
            if proc.poll() is None:
                proc.send_signal(signum)

        return signal.signal(signal.SIGTERM, forward)
    except (ValueError, OSError):  # not the main thread
        return None


def _restore_sigterm(previous: Any) -> None:
    if previous is None:
        return
    try:
        signal.signal(signal.SIGTERM, previous)
    except (ValueError, OSError):
        pass
