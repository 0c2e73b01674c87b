"""Progress reporting without a dependency on the CLI.

Library code asks for ``reporter.stage(name, total)`` and calls the returned
``advance(n=1, info=None)`` (``info``: a short status such as the current loss), and
``reporter.note(message)`` for a line of text. Every reporter implements both in full, so
callers never probe for them. The CLI passes :class:`RichProgress` (bars on stderr); tests
and library users get :class:`NullProgress`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Advance(Protocol):
    def __call__(self, n: int = 1, info: str | None = None) -> None: ...


class ProgressReporter(Protocol):
    def stage(self, name: str, total: int | None = None) -> AbstractContextManager[Advance]:
        """A context manager yielding ``advance(n=1, info=None)`` for one long step."""

    def note(self, message: str) -> None: ...


def _ignore(n: int = 1, info: str | None = None) -> None:
    pass


class NullProgress:
    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        yield _ignore

    def note(self, message: str) -> None:
        pass


class RichProgress:
    """One rich progress bar per stage, on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, quiet=quiet)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[info]}")]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(name, total=total, info="")

            def advance(n: int = 1, info: str | None = None) -> None:
                bar.update(task, advance=n, **({"info": info} if info is not None else {}))

            yield advance
            if total is not None:
                bar.update(task, completed=total)

    def note(self, message: str) -> None:
        self.console.print(message)
