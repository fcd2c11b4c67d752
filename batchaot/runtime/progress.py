"""Progress of a long run: a live bar on a terminal, plain lines otherwise, or nothing."""
from __future__ import annotations

import sys
import time


class Quiet:
    """The reporter interface; also the reporter that says nothing."""

    def start(self, units: int, rows: int, mode: str) -> None: ...
    def attach(self, workers: list) -> None: ...   # the worker actor handles, once started
    def advance(self, rows: int, failing: int, error: str | None = None) -> None: ...
    def note(self, text: str) -> None: ...           # a phase starts (e.g. reducing buckets)
    def finish(self) -> None: ...


class Lines(Quiet):
    """One line per ~10% of units (CI logs, pipes)."""

    def __init__(self, stream=None, rules: bool = True):
        self.stream = stream or sys.stderr
        self.rules = rules              # a run with row rules says how many fail so far

    def start(self, units: int, rows: int, mode: str) -> None:
        self.total, self.done, self.rows, self.next_report = units, 0, 0, 0.1
        self.t0 = time.perf_counter()
        rows_text = f", {rows:,} rows" if rows >= 0 else ""
        print(f"batchaot: {units} work units{rows_text}, {mode}", file=self.stream, flush=True)

    def advance(self, rows: int, failing: int, error: str | None = None) -> None:
        self.done += 1
        self.rows += rows
        if error:
            print(f"batchaot: skipped: {error}", file=self.stream, flush=True)
        if self.done / max(self.total, 1) >= self.next_report or self.done == self.total:
            self.next_report += 0.1
            failing_text = f"{failing} row rules failing, " if self.rules else ""
            print(f"batchaot: {self.done}/{self.total} units, {self.rows:,} rows, "
                  f"{failing_text}{time.perf_counter() - self.t0:.1f} s",
                  file=self.stream, flush=True)

    def note(self, text: str) -> None:
        print(f"batchaot: {text}", file=self.stream, flush=True)


class Bar(Quiet):
    """A rich progress bar on stderr: units done, rows, rules failing so far."""

    def __init__(self, rules: bool = True):
        # rich loads in ~40 ms: only for a bar on a terminal
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        failing = [TextColumn("[red]{task.fields[failing]} row rules failing")] if rules else []
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rows]:,} rows"),
                                 *failing, TimeElapsedColumn(), transient=True)
        self.doing = "validating" if rules else "profiling"

    def start(self, units: int, rows: int, mode: str) -> None:
        self.rows = 0
        self.progress.start()
        self.task = self.progress.add_task(f"{self.doing} ({mode})", total=units, rows=0, failing=0)

    def advance(self, rows: int, failing: int, error: str | None = None) -> None:
        self.rows += rows
        if error:
            self.progress.console.print(f"[yellow]skipped:[/] {error}")
        self.progress.update(self.task, advance=1, rows=self.rows, failing=failing)

    def note(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/]")

    def finish(self) -> None:
        self.progress.stop()


def choose(quiet: bool, rules: bool = True) -> Quiet:
    """No progress, a bar (a terminal) or lines (logs); `rules`: whether the run has row
    rules whose failures to count (a profile has none)."""
    if quiet:
        return Quiet()
    return Bar(rules) if sys.stderr.isatty() else Lines(rules=rules)
