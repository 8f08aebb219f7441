"""Exit codes and the one place that turns exceptions into them.

User mistakes and environment problems are TcptuneError subclasses: they print one line
(what, where, how to fix) and exit with their code. Anything else is a bug: it prints the
traceback and exits with EXIT_BUG.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_DRIFT = 1  # drift from a profile, error-level findings, or warnings with --strict
EXIT_BAD_INPUT = 2  # bad command line, unknown key, invalid profile
EXIT_ENVIRONMENT = 3  # cannot read, permission denied, read-only /proc/sys
EXIT_BUG = 4  # an unexpected exception: a bug in tcptune
EXIT_INTERRUPTED = 130


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


def run_guarded(func: Callable[[], int]) -> int:
    """Run a command body and map what it raises to an exit code."""
    try:
        return func()
    except TcptuneError as err:
        print(f"tcptune: error: {err.line()}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("tcptune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `tcptune check | head`: the reader went away; not an error worth a traceback.
        return EXIT_OK
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            "tcptune: internal error (a bug in tcptune); please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
