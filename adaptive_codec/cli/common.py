"""What every command of the ``adaptive-codec`` command line shares: state, errors, options.

* Every command function is wrapped in :func:`handle_errors`: an
  :class:`~adaptive_codec.errors.AdaptiveCodecError` or ``OSError`` becomes
  one line ``error: ...`` on stderr and exit code 1. Usage errors exit with
  code 2 (also one line, via :func:`adaptive_codec.cli.app.main`). ``--debug``
  shows tracebacks.
* :func:`load_codec` is the command line's one lazy import of the codec
  (torch): ``--help`` and ``profiles`` stay fast.
* Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

import adaptive_codec
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles import ProfileRegistry
from adaptive_codec.threads import pin_threads

if TYPE_CHECKING:
    from adaptive_codec.codec import AdaptiveCodec

__all__ = ["PROG", "CliState", "cli_state", "set_cli_state", "fail", "handle_errors", "print_error",
           "error_message", "is_click_flow", "class_names", "load_codec", "check_output", "ThreadsOpt",
           "ForceOpt", "BitrateScaleOpt"]

PROG = "adaptive-codec"
F = TypeVar("F", bound=Callable[..., Any])


# -- shared state and error handling ------------------------------------------


@dataclass
class CliState:
    """Options of the top-level command, shared with every sub-command."""

    debug: bool = False
    profiles_dirs: tuple[Path, ...] = ()
    _registry: ProfileRegistry | None = field(default=None, repr=False)

    def registry(self) -> ProfileRegistry:
        """Profiles: built-ins + plug-ins + $ADAPTIVE_CODEC_PROFILES + --profiles-dir."""
        if self._registry is None:
            self._registry = ProfileRegistry.default(self.profiles_dirs)
        return self._registry


# Set by the root callback on every invocation. A context variable rather than
# click's context object because newer typer vendors its own click, so
# `click.get_current_context()` would not see typer's context.
_STATE: contextvars.ContextVar[CliState] = contextvars.ContextVar("adaptive_codec_cli")


def cli_state() -> CliState:
    """The :class:`CliState` of the running command (defaults outside one)."""
    return _STATE.get(CliState())


def is_click_flow(exc: BaseException) -> bool:
    """True for typer/click's own exceptions (exit, abort, usage errors).

    Duck-typed on purpose: recent typer versions ship a private copy of click, so
    the classes differ between typer versions.
    """
    if isinstance(exc, (typer.Exit, typer.Abort)):
        return True
    return hasattr(exc, "exit_code") and hasattr(exc, "format_message")


def class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


# The package's atomic writers write ".NAME.XXXXXXXX.tmp" beside the output
# (tempfile.mkstemp's 8 random characters) and rename it at the end.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


def _user_path(filename: Any) -> str:
    """``filename`` as the user knows it: an atomic writer's temporary file is its output."""
    path = os.fsdecode(filename) if isinstance(filename, (str, bytes, os.PathLike)) else str(filename)
    head, tail = os.path.split(path)
    match = _TEMP_NAME.match(tail)
    return os.path.join(head, match["name"]) if match else path


def error_message(exc: BaseException) -> str:
    """The one-line message of an expected error.

    An ``OSError`` reads ``PATH: reason`` (``x.wav: No such file or
    directory``; a rename names both paths), with the output's own name where
    the OS named an atomic writer's temporary file, and the OS's reason as it
    is (``No space left on device``).
    """
    if isinstance(exc, OSError) and exc.strerror:
        # "[Errno 2] No such file or directory: 'x'" -> "x: No such file or directory"
        if exc.filename is None:
            return exc.strerror
        name = _user_path(exc.filename)
        if exc.filename2 is not None and _user_path(exc.filename2) != name:
            name = f"{name} -> {_user_path(exc.filename2)}"
        return f"{name}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def print_error(message: str) -> None:
    # One line, whatever the message holds: scripts grep for "error:".
    one_line = " ".join(message.split())
    typer.echo(f"error: {one_line}", err=True)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Decorate a command: expected errors become one line and exit code 1.

    ``AdaptiveCodecError`` and ``OSError`` print ``error: <message>``;
    anything else is a bug and prints ``error: internal error: ...`` with a
    hint to rerun with ``--debug``, which re-raises so the traceback shows.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`... | head`): not an error. Point stdout
            # at /dev/null so the final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (AdaptiveCodecError, OSError) as exc:
            if cli_state().debug:
                raise
            fail(error_message(exc))
        except Exception as exc:  # noqa: BLE001 - last line of defence
            if cli_state().debug or is_click_flow(exc):
                raise
            fail(f"internal error: {type(exc).__name__}: {error_message(exc)} "
                 f"(rerun with --debug for the traceback)")

    return wrapper  # type: ignore[return-value]


def set_cli_state(state: CliState) -> None:
    """Set the state of the running command (the root callback does, on every invocation)."""
    _STATE.set(state)


def load_codec(threads: int = 1) -> "AdaptiveCodec":
    """The shipped codec with the command's profile folders, on ``threads`` torch threads.

    The command line's one import of the codec (and torch): commands that do
    not code audio never pay for it.
    """
    pin_threads(threads)
    # adaptive_codec.AdaptiveCodec: the package's one lazy import of the codec (torch).
    return adaptive_codec.AdaptiveCodec.default(profiles_dirs=cli_state().profiles_dirs)


def check_output(path: Path, force: bool) -> None:
    """Refuse to overwrite ``path`` without ``--force``, or to write into a missing folder."""
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)")
    if not path.parent.exists():
        fail(f"{path.parent}: output folder does not exist")


ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="CPU threads for the codec.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]
BitrateScaleOpt = Annotated[Optional[float], typer.Option(
    "--bitrate-scale", metavar="X",
    help="Multiply each profile's own bitrate by X (keeps the profiles' allocation; not with --bitrate).")]
