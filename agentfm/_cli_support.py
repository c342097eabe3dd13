"""What the ``agentfm-py`` commands share: console, progress bar, client and exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from agentfm import AgentFMClient, ScatterProgress

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


class Console:
    """Rich when it is installed (the ``cli`` extra), plain text otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        try:
            from rich.console import Console as RichConsole
        except ImportError:
            self._rich: Any = None
        else:
            self._rich = RichConsole(file=stream, highlight=False, soft_wrap=True)

    @property
    def rich(self) -> Any:
        return self._rich

    def print(self, text: str = "", *, style: str | None = None) -> None:
        if self._rich is not None:
            self._rich.print(text, style=style, markup=False)
        else:
            print(text, file=self._stream)

    def write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    @property
    def width(self) -> int:
        """Columns available (rich's idea of the terminal; generous for plain text)."""
        return int(self._rich.width) if self._rich is not None else 1000

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> None:
        widths = [
            max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
            for i, c in enumerate(columns)
        ]
        if self._rich is not None:
            from rich import box
            from rich.table import Table

            table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
            for col in columns:
                table.add_column(col, no_wrap=True)
            for row in rows:
                table.add_row(*row)
            self._rich.print(table)
            return
        print(title, file=self._stream)
        for row in (columns, *rows):
            line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
            print(line.rstrip(), file=self._stream)


def fit_peer_ids(rows: list[list[str]], columns: Sequence[str], out: Console, err: Console) -> None:
    """Shorten the last column (the peer id) in place when the table is wider than ``out``.

    A folded peer id cannot be copied; a narrow terminal gets a recognisable short form, and
    a note on ``err`` says where the full ids are.
    """
    needed = sum(max([len(c), *(len(r[i]) for r in rows)]) + 2 for i, c in enumerate(columns))
    if needed <= out.width:
        return
    for row in rows:
        row[-1] = f"{row[-1][:12]}…{row[-1][-4:]}"
    err.print("peer ids shortened to fit; `agentfm-py workers` prints them in full", style="dim")


def make_client(args: argparse.Namespace, **kwargs: Any) -> AgentFMClient:
    from agentfm import AgentFMClient

    options: dict[str, Any] = {"timeout": args.timeout, **kwargs}
    if args.api_key is not None:
        options["api_key"] = args.api_key
    return AgentFMClient(args.gateway, **options)


class Progress:
    """A transient rich progress bar on stderr (nothing without rich)."""

    def __init__(self, err: Console, total: int) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._total = total
        if err.rich is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err.rich,
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("scatter", total=self._total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: ScatterProgress) -> None:
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=progress.done,
                description=f"scatter ({progress.failovers} failovers)",
            )
