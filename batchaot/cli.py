"""The `batchaot` command line (the only importer of click).

Exit codes: 0 every rule passed, 1 a rule of severity `error` failed, 2 bad usage or
input (one line on stderr, no traceback).
"""
from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console
from rich.table import Table

from . import api
from .compiler import compile_rules
from .errors import BatchaotError, ResourceError
from .io import sources
from .io.sinks import ignore_file_size_signal

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


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


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--rules", "-r", required=True, help="Rules YAML file.")
@click.option("--output", "-o", help="Write summary.json and violations/*.parquet here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def validate(data: tuple[str, ...], rules: str, output: str | None, as_json: bool) -> None:
    """Check DATA (Parquet, CSV, Arrow IPC or JSONL files, globs) against RULES."""
    stream = _reserve_stdout() if as_json else None
    result = api.validate(list(data), rules, output=output)
    if as_json:
        _emit_json(stream, result.to_json())
    else:
        _print_result(result, output)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _console() -> Console:
    # Piped output (CI logs) gets a wide fixed width rather than rich's 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


@main.command()
@click.argument("job_file", metavar="JOB.yaml")
@click.option("--address", help="Ray cluster to join: 'auto' or ray://host:10001. "
              "Default: an embedded local Ray (or none at all for small inputs).")
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Worker actors (default: all cores).")
@click.option("--output", "-o", help="Results folder (overrides the job's output.path).")
@click.option("--mode", type=click.Choice(["auto", "in-process", "ray"]), default="auto",
              show_default=True, help="Where to run; auto keeps small inputs in this process.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def submit(job_file: str, address: str | None, workers: int | None, output: str | None,
           mode: str, as_json: bool, quiet: bool) -> None:
    """Run a job file: validate data (or compile rules, or profile data) on Ray, locally or on a cluster."""
    from .distributed import Job
    from .runtime.progress import choose

    stream = _reserve_stdout() if as_json else None
    job = Job.from_yaml(job_file)
    result = job.run(address=address, workers=workers, output=output, mode=mode,
                     progress=choose(quiet or as_json, rules=job.spec.kind != "profile"))
    if as_json:
        _emit_json(stream, result.to_json())
    elif job.spec.kind == "compile":
        _print_compile(result.to_dict())
    elif job.spec.kind == "profile":
        _print_profile(result)
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
    shown = f"{value:.6g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else "n/a"
    return f"{text} → {shown}"


def _print_result(result, output: str | None) -> None:
    console = _console()
    table = Table(title=f"{result.rows:,} rows checked in {result.elapsed_s:.3f} s")
    for col, justify in (("rule", "left"), ("severity", "left"), ("status", "left"),
                         ("violations", "right"), ("null rows", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("check", no_wrap=True, overflow="ellipsis", max_width=70)
    for r in result.rules:
        s = r.summary()
        status = ("[green]pass[/]" if s["passed"] else
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
    if output:
        console.print(f"results written to {output}/summary.json and {output}/violations/")
    console.print("[green]all error rules passed[/]" if result.ok else "[red]validation failed[/]")


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
