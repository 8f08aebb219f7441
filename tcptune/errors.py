"""Exit codes and the one place that turns exceptions into them.

User mistakes and environment problems are TcptuneError subclasses: they print one line
(what, where, how to fix) and exit with their code. Anything else is a bug: it prints the
traceback and exits with EXIT_BUG.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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


def printable(text: str) -> str:
    """`text` with every control character (newline, escape, ...) shown escaped, as Python
    writes it in a string literal: text from names, paths and files stays on its line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def say(line: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    sys.stderr.write(f"tcptune: {printable(line)}\n")
    sys.stderr.flush()


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
        say(f"error: {err.line()}")
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        say("interrupted")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        silence_stdout()
        raise SystemExit(EXIT_OK) from None
    except Exception:
        import traceback

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
