"""Progress reporting without a dependency on the CLI.

Library code asks for ``reporter.stage(name, total)`` and calls the returned
``advance(n)``; the CLI passes :class:`RichProgress` (bars on stderr), tests and
library users get :class:`NullProgress`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

Advance = Callable[[int], None]


class ProgressReporter(Protocol):
    def stage(self, name: str, total: int | None = None) -> Any:
        """A context manager yielding ``advance(n)`` for one long step."""

    def note(self, message: str) -> None: ...


class NullProgress:
    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda n=1: None

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
