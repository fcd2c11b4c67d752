"""The `batchaot` command line (the only importer of click).

Exit codes: 0 every rule passed, 1 a rule of severity `error` failed, 2 bad usage or
input (one line on stderr, no traceback).
"""
from __future__ import annotations

import json
import os
import sys

import click

from . import api
from .compiler import compile_rules
from .errors import BatchaotError, ResourceError
from .io import sources
from .io.sinks import ignore_file_size_signal

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
FORMATS = ("table", "github")
JUNIT_HELP = "Also write the result as JUnit XML (one testcase per rule) to FILE."
FORMAT_HELP = "table: for people; github: GitHub Actions annotations (::error/::warning lines)."
NOW_HELP = ("Fix \"now\" (ISO 8601, e.g. 2024-06-01T12:00:00Z; naive = UTC) for current_date, "
            "now() and freshness checks.")


def _fail(exc: Exception) -> None:
    click.echo(f"batchaot: error: {exc}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class _Group(click.Group):
    """Turns user-facing errors raised anywhere below into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        ignore_file_size_signal()       # past `ulimit -f` a write fails (exit 2), not the process
        try:
            return super().invoke(ctx)
        except BatchaotError as exc:
            _fail(exc)
        except MemoryError:
            _fail(ResourceError("out of memory: the run was stopped (its output folder, if any, "
                                "holds a summary saying so); give it more memory or less data at once"))


def _reserve_stdout():
    """With --json, stdout carries exactly one JSON object: from here on anything else that
    would reach it — Ray's "(raylet) A worker died ..." lines, printed by a driver thread
    whenever a worker dies, a library's print, a child process — goes to stderr, at the
    Python and at the file-descriptor level. Returns the stream the JSON goes to."""
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        fd, err_fd = out.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):   # not a real file (a test runner's capture)
        return out
    out.flush()
    stream = os.fdopen(os.dup(fd), "w", encoding="utf-8")
    os.dup2(err_fd, fd)                 # children (raylet, workers) inherit stderr as stdout
    return stream


def _emit_json(stream, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


@click.group(cls=_Group)
@click.version_option(package_name="batchaot")
def main() -> None:
    """Compile data-quality rules ahead of time and check batch data at memory speed."""


QUARANTINE_HELP = ("Split the rows: DIR/valid/*.parquet (breaking no error rule) and "
                   "DIR/invalid/*.parquet (with failed_rules, source, row).")


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--rules", "-r", required=True, help="Rules YAML file.")
@click.option("--output", "-o", help="Write summary.json and violations/*.parquet here.")
@click.option("--quarantine", "quarantine", metavar="DIR", help=QUARANTINE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--now", help=NOW_HELP)
@click.option("--junit", "junit_path", metavar="FILE", help=JUNIT_HELP)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help=FORMAT_HELP)
@click.option("--history", "history_path", metavar="PATH",
              help="Append this run's metrics to this SQLite file (change/anomaly checks read it).")
def validate(data: tuple[str, ...], rules: str, output: str | None, quarantine: str | None, as_json: bool,
             now: str | None, junit_path: str | None, fmt: str, history_path: str | None) -> None:
    """Check DATA (Parquet, CSV, Arrow IPC or JSONL files, globs) against RULES."""
    stream = _reserve_stdout() if as_json else None
    result = _reported(junit_path, lambda: api.validate(list(data), rules, output=output, quarantine=quarantine,
                                                         history=history_path, now=now))
    if as_json:
        _emit_json(stream, result.to_json())
    elif fmt == "github":
        _print_github(result.to_dict())
    else:
        _print_result(result, output)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _reported(junit_path: str | None, run):
    """run(); with --junit, its summary as JUnit XML — also when the run fails with a
    user error (exit 2), so CI shows why instead of a missing report."""
    from .report import ci
    try:
        result = run()
    except BatchaotError as exc:
        if junit_path:
            ci.write_junit(junit_path, {"failed": True, "error": str(exc), "rules": []})
        raise
    if junit_path:
        ci.write_junit(junit_path, result.to_dict())
    return result


def _print_github(summary: dict) -> None:
    from .report import ci
    for line in ci.github(summary):
        click.echo(line)


def _console():
    from rich.console import Console       # ~30 ms: only when printing for a person

    # Piped output (CI logs) gets a wide fixed width rather than rich's 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


@main.command()
@click.argument("job_file", metavar="JOB.yaml")
@click.option("--address", help="Ray cluster to join: 'auto' or ray://host:10001. "
              "Default: an embedded local Ray (or none at all for small inputs).")
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Worker actors (default: all cores).")
@click.option("--output", "-o", help="Results folder (overrides the job's output.path).")
@click.option("--quarantine", "quarantine", metavar="DIR",
              help=QUARANTINE_HELP + " Overrides the job's output.quarantine.")
@click.option("--mode", type=click.Choice(["auto", "in-process", "ray"]), default="auto",
              show_default=True, help="Where to run; auto keeps small inputs in this process.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--now", help=NOW_HELP + " Overrides the job's now:.")
@click.option("--junit", "junit_path", metavar="FILE", help=JUNIT_HELP)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help=FORMAT_HELP)
@click.option("--history", "history_path", metavar="PATH",
              help="Append this run's metrics to this SQLite file (overrides the job's history:).")
@click.option("--memory-budget", metavar="SIZE",
              help="Memory unique/reference keep their keys in before spilling to disk, e.g. 2GB "
                   "(overrides the job's memory_budget:; default: a quarter of what the process may use).")
def submit(job_file: str, address: str | None, workers: int | None, output: str | None,
           quarantine: str | None, mode: str, as_json: bool, quiet: bool, now: str | None,
           junit_path: str | None, fmt: str, history_path: str | None, memory_budget: str | None) -> None:
    """Run a job file: validate data (or compile rules, or profile data) on Ray, locally or on a cluster."""
    from .distributed import Job
    from .runtime.progress import choose

    stream = _reserve_stdout() if as_json else None
    job = Job.from_yaml(job_file)
    result = _reported(junit_path if job.spec.kind == "validate" else None,
                       lambda: job.run(address=address, workers=workers, output=output, mode=mode,
                                       progress=choose(quiet or as_json or fmt == "github",
                                                       rules=job.spec.kind != "profile"),
                                       quarantine=quarantine, history=history_path, now=now,
                                       memory_budget=memory_budget))
    if as_json:
        _emit_json(stream, result.to_json())
    elif job.spec.kind == "compile":
        _print_compile(result.to_dict())
    elif job.spec.kind == "profile":
        _print_profile(result)
    elif fmt == "github":
        _print_github(result.to_dict())
    else:
        _print_result(result, result.output)
    sys.exit(result.exit_code)


@main.command()
@click.argument("job_file", metavar="JOB.yaml")
@click.option("--ablation", is_flag=True, required=True,
              help="Time the job with each part of batchaot removed and alone.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Most Ray workers to try.")
@click.option("--output", "-o", default="benchmarks/results", show_default=True,
              help="Folder for the JSON and PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(job_file: str, ablation: bool, repeat: int, workers: int | None, output: str,
          as_json: bool) -> None:
    """Measure what each part of batchaot buys on JOB (an honest ablation)."""
    from .distributed import Job
    from .report import ablation as abl

    report = abl.ablation(Job.from_yaml(job_file).spec, repeat=repeat, workers=workers)
    files = abl.write(report, output)
    click.echo(json.dumps(report) if as_json else abl.table(report) + "\nwrote " + ", ".join(files))


def _print_compile(summary: dict) -> None:
    console = _console()
    console.print(f"compiled {summary['compiled']} of {summary['rules']} rules from "
                  f"{summary['files']} files in {summary['elapsed_s']:.3f} s ({summary['mode']}; "
                  f"{summary['cache_hits']} from cache, {summary['zero_tick']} zero-tick)")
    for d in summary["diagnostics"]:
        console.print(f"[red]error:[/] {d}")
    if summary.get("output"):
        console.print(f"rows written to {summary['output']}")


def _check_text(summary: dict) -> str:
    """The rule; for a dataset-level check also what it computed."""
    text = str(summary["check"])
    if summary["kind"] == "check":
        return text
    value = summary["value"]
    if summary["kind"] == "freshness" and (summary.get("details") or {}).get("age"):
        return f"{text} → {summary['details']['age']} old"
    if summary["kind"] == "schema" and value is not None:
        return f"{text} → {value} problem{'s' * (value != 1)}"
    shown = f"{value:.6g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else "n/a"
    return f"{text} → {shown}"


def _print_result(result, output: str | None) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{result.rows:,} rows checked in {result.elapsed_s:.3f} s")
    for col, justify in (("rule", "left"), ("severity", "left"), ("status", "left"),
                         ("violations", "right"), ("null rows", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("check", no_wrap=True, overflow="ellipsis", max_width=70)
    for r in result.rules:
        s = r.summary()
        status = ("[dim]not run[/]" if s["passed"] is None else "[green]pass[/]" if s["passed"] else
                  "[red]FAIL[/]" if s["severity"] == "error" else "[yellow]warn[/]")
        if s["zero_tick"]:
            status += " (zero-tick)"
        nulls = f"{s['null_rows']:,}"
        if s.get("overflow_rows"):
            nulls += f" ({s['overflow_rows']:,} overflow)"
        table.add_row(s["name"], s["severity"], status, f"{s['violations']:,}", nulls, _check_text(s))
    console.print(table)
    for error in getattr(result, "errors", []):
        console.print(f"[yellow]skipped:[/] {error}")
    if result.stopped:
        console.print(f"[red]stopped:[/] {result.stopped}")
    for r in result.rules:
        if r.spec.needs_history:
            console.print(f"baseline of {r.spec.name}: {_baseline_text(r.outcome.details)}", markup=False)
    if result.history is not None:
        console.print(f"recorded as run {result.history['run']} in {result.history['path']}", markup=False)
    if output:
        console.print(f"results written to {output}/summary.json and {output}/violations/; "
                      f"report: {os.path.join(output, 'report.html')}")
    split = getattr(result, "quarantined", None)
    if split:
        path = split["path"]
        console.print(f"quarantine: {split['valid_rows']:,} valid rows in {path}/valid/, "
                      f"{split['invalid_rows']:,} invalid rows in {path}/invalid/", soft_wrap=True)
    console.print("[green]all error rules passed[/]" if result.ok else "[red]validation failed[/]")


def _baseline_text(details: dict) -> str:
    if details.get("history") == "insufficient":
        return f"insufficient history ({details['runs']} earlier run(s), {details['needed']} needed): passes"
    return str(details.get("baseline") or details.get("reason", "n/a"))


@main.command()
@click.argument("target", metavar="JOB_OR_DB")
@click.option("--job", help="Only runs of this job (default: a job file's own name; a database: all jobs).")
@click.option("--metric", "metrics", multiple=True, help="A metric's trend: row_count, duration_s, "
              "violations(rule) or an aggregate such as 'avg(amount)'; repeatable. Default: the "
              "row count, the duration and the violations of the rules that had some.")
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True, help="Runs shown.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def history(target: str, job: str | None, metrics: tuple[str, ...], last: int, as_json: bool) -> None:
    """Recent runs and metric trends from a history file (or a job file's history:)."""
    from rich.table import Table

    from .report import history as hist

    path, job = hist.target(target, job)
    found = hist.view(path, job, list(metrics), last)
    if as_json:
        click.echo(json.dumps(found))
        return
    console = _console()
    what = f" of job {job}" if job else ""
    runs = Table(title=f"last {len(found['runs'])} run(s){what} in {path}")
    for col in ("run", "at", "job", "verdict", "rows", "seconds", "failing rules"):
        runs.add_column(col, justify="right" if col in ("run", "rows", "seconds") else "left",
                        no_wrap=col != "failing rules")
    colors = {"pass": "green", "warn": "yellow", "fail": "red"}
    for r in reversed(found["runs"]):
        seconds = f"{r['duration_s']:.3f}" if r["duration_s"] is not None else ""
        runs.add_row(str(r["id"]), (r["now"] or r["started"])[:19], r["job"],
                     f"[{colors.get(r['verdict'], 'white')}]{r['verdict']}[/]", f"{r['rows']:,}", seconds,
                     ", ".join(r["failing"]))
    console.print(runs)
    trends = Table(title="trends, oldest → newest")
    for col in ("metric", "trend", "runs", "min", "max", "last", "values"):
        trends.add_column(col, justify="right" if col in ("runs", "min", "max", "last") else "left",
                          no_wrap=True, overflow="ellipsis", max_width=60 if col == "values" else None)
    for name, points in found["trends"].items():
        values = [p["value"] for p in points]
        finite = [v for v in values if v is not None]
        show = (lambda v: "" if v is None else f"{v:.6g}")
        trends.add_row(name, hist.sparkline(values), str(len(values)), show(min(finite, default=None)),
                       show(max(finite, default=None)), show(values[-1] if values else None),
                       " ".join(show(v) or "-" for v in values))
    console.print(trends)


@main.command()
@click.option("--rows", default=50_000, show_default=True, help="Rows of generated data to check.")
def warmup(rows: int) -> None:
    """Compile the runtime's kernels into Numba's disk cache, once per install (`make`
    and cluster.yaml run it), so no later run, Ray worker or test process compiles them."""
    click.echo(f"batchaot: runtime kernels compiled and cached in {api.warm_up(rows):.1f} s", err=True)


@main.command()
@click.argument("folder", metavar="DIR")
def report(folder: str) -> None:
    """(Re)build DIR/report.html from DIR/summary.json and DIR/violations/ (the output
    folder of validate --output or submit)."""
    from .report import html
    click.echo(f"report written to {html.build(folder)}")


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def profile(data: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Profile every column of DATA: type, NULLs, min/max, distinct values, top values,
    string lengths and pattern, monotonicity, candidate keys."""
    from .runtime.progress import choose

    stream = _reserve_stdout() if as_json else None
    found = api.profile(list(data), progress=choose(quiet or as_json, rules=False))
    if as_json:
        _emit_json(stream, found.to_json())
    else:
        _print_profile(found)
    sys.exit(found.exit_code)


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--output", "-o", help="Write the rules YAML here (default: print it).")
def suggest(data: tuple[str, ...], output: str | None) -> None:
    """Suggest a rules file for DATA from its profile; every rule kept passes on DATA."""
    found = api.suggest(list(data), output=output)
    if output is None:
        click.echo(found.text, nl=False)
    for rule, why in found.dropped:
        click.echo(f"dropped {rule.name}: {why}", err=True)
    if output is not None:
        click.echo(f"wrote {len(found.kept)} rules to {output}"
                   + (f"; {len(found.dropped)} more failed on the data and were dropped" if found.dropped else ""))


_PROFILE_COLUMNS = ("column", "type", "nulls", "min", "max", "distinct", "length", "top values / pattern",
                    "order")


def _print_profile(found) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{found.rows:,} rows, {len(found.columns)} columns profiled in {found.elapsed_s:.3f} s")
    for col in _PROFILE_COLUMNS:
        wide = {"min": 19, "max": 19, "top values / pattern": 40}.get(col)
        table.add_column(col, justify="right" if col in ("nulls", "distinct") else "left", no_wrap=True,
                         overflow="ellipsis", max_width=wide, min_width=None if wide else max(len(col), 7))
    for c in found.columns:
        d = c.to_dict()
        distinct = "" if d["distinct"] is None else f"{d['distinct']:,}" + ("" if d["distinct_exact"] else " ~")
        length = "" if d["length"] is None else f"{d['length'][0]}..{d['length'][1]}"
        shape = (", ".join(f"{v} ({n:,})" for v, n in d["top_values"][:5]) if d["top_values"]
                 else d["pattern"] or "")
        table.add_row(c.name, d["type"], f"{d['null_fraction']:.2%}", _shown(d["min"]), _shown(d["max"]),
                      distinct, length, shape, d["monotonic"] or "")
    console.print(table, markup=False)
    keys = found.candidate_keys
    sketched = any(not c.distinct_exact for c in found.columns)
    console.print(f"candidate keys: {', '.join(keys) if keys else 'none'} (no NULL, every value distinct"
                  f"{'; ~ marks a HyperLogLog estimate' if sketched else ''})", markup=False)
    for error in found.errors:
        console.print(f"[yellow]skipped:[/] {error}")


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@main.command()
@click.argument("rules")
@click.option("--schema", "schema_path", required=True,
              help="A data file whose schema the rules are compiled against.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def inspect(rules: str, schema_path: str, as_json: bool) -> None:
    """Show each rule's bytecode before and after optimization."""
    specs = api.load_rule_specs(rules)
    schema = sources.read_schema(schema_path)
    programs = compile_rules(specs, schema)
    if as_json:
        click.echo(json.dumps({"rules": [_program_info(p) for p in programs]}))
        return
    total0 = total1 = 0
    for prog in programs:
        before, after = prog.size
        total0, total1 = total0 + before, total1 + after
        click.echo(prog.disassemble())
        passes = ", ".join(f"{k} -{v}" for k, v in prog.removed.items() if v) or "nothing to remove"
        click.echo(f"; passes: {passes}\n")
    zero = [p.name for p in programs if p.zero_tick]
    click.echo(f"{len(programs)} rules, {total0} → {total1} instructions; "
               f"zero-tick: {', '.join(zero) if zero else 'none'}")


def _program_info(prog) -> dict:
    return {"name": prog.name, "source": prog.source, "hash": prog.hash,
            "before": prog.size[0], "after": prog.size[1], "removed": prog.removed,
            "zero_tick": prog.zero_tick, "verdict": prog.verdict,
            "listing_before": prog.disassemble("before"), "listing_after": prog.disassemble("after")}


if __name__ == "__main__":
    main()
