"""Exit codes and the one place that turns exceptions into them.

User mistakes and environment problems are TcptuneError subclasses: they print one line
(what, where, how to fix) and exit with their code. Anything else is a bug: it prints the
traceback and exits with EXIT_BUG.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

EXIT_OK = 0
EXIT_DRIFT = 1  # drift from a profile, error-level findings, or warnings with --strict
EXIT_BAD_INPUT = 2  # bad command line, unknown key, invalid profile
EXIT_ENVIRONMENT = 3  # cannot read, permission denied, read-only /proc/sys
EXIT_BUG = 4  # an unexpected exception: a bug in tcptune
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


class TcptuneError(Exception):
    """An error the user can fix; its message is the whole report."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInput(TcptuneError):
    exit_code = EXIT_BAD_INPUT


class EnvironmentProblem(TcptuneError):
    exit_code = EXIT_ENVIRONMENT


class OutputFailed(EnvironmentProblem):
    """Standard output is closed, or writing to it failed (a full disk, an I/O error)."""


def printable(text: str) -> str:
    """`text` with every control character (newline, escape, ...) shown escaped, as Python
    writes it in a string literal: text from names, paths and files stays on its line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def say(line: str) -> None:
    """One line on stderr, prefixed with the program's name; nothing if stderr is closed or
    cannot be written (the exit code still tells)."""
    if sys.stderr is None:
        return
    try:
        sys.stderr.write(f"tcptune: {printable(line)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class GuardedOutput:
    """Standard output, whose write failures (other than a reader that went away) are an
    OutputFailed: one line and exit 3, not a traceback."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise output_failed(err) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise output_failed(err) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def output_failed(err: OSError) -> OutputFailed:
    reason = os.strerror(err.errno) if err.errno else str(err)
    return OutputFailed(
        f"cannot write to standard output: {reason}",
        hint="free space on, or fix, where the output goes",
    )


@contextmanager
def guarded_stdout() -> Iterator[None]:
    """Run the command with stdout guarded (see GuardedOutput); a closed stdout fails before
    anything runs, so nothing is changed that could not be reported."""
    if sys.stdout is None:
        raise OutputFailed("standard output is closed", hint="send it somewhere, e.g. >/dev/null")
    stream = sys.stdout
    sys.stdout = GuardedOutput(stream)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = stream


@contextmanager
def error_handler() -> Iterator[None]:
    """Run a command line under this; what escapes it ends the program with its exit code.

    A TcptuneError prints its one line; Ctrl-C prints one line and exits 130; a reader that
    went away (`tcptune check | head`) is not an error; anything else is a bug: the traceback,
    then exit 4. Each ends in SystemExit(code).
    """
    try:
        yield
    except TcptuneError as err:
        if isinstance(err, OutputFailed):
            silence_stdout()  # what is still buffered cannot be written at exit either
        say(f"error: {err.line()}")
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        say("interrupted")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        silence_stdout()
        raise SystemExit(EXIT_OK) from None
    except Exception as err:
        if caused_by_interrupt(err):
            say("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        import traceback

        if sys.stderr is not None:
            with suppress(OSError, ValueError):
                traceback.print_exc()
        say("internal error (a bug in tcptune); please report it with the traceback above")
        raise SystemExit(EXIT_BUG) from None


def silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again on a
    closed pipe (and print a traceback at exit)."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file: nothing is flushed at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def caused_by_interrupt(err: BaseException) -> bool:
    """Ctrl-C that Python reported as another error: a KeyboardInterrupt raised while a class is
    being created comes out as "RuntimeError: Error calling __set_name__ ..." (Python 3.11),
    with the KeyboardInterrupt as its cause. Not a bug of tcptune's."""
    seen = err.__cause__
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__
    return False
