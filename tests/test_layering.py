"""The layers of batchaot/, read from the source with an AST walk (no import runs).

Every import counts: at the top of a module or inside a function. From the bottom up:

    errors, _version      anything may import them
    io, native            leaves: they import only errors (io may import io)
    compiler              spec, native, io; never engine, runtime, checks (the checks
                          register their kinds with compiler.compile_rules)
    engine                compiler, native, io; never checks, runtime, distributed, api,
                          cli, nor the root package `batchaot`
    checks                compiler, engine, io
    profile               checks, io, spec (profiles run as dataset checks; the runtime
                          runs them, distributed/profile_job.py and api call it)
    runtime               the layer every run calls: compiler, engine, checks, io, result
    distributed           places the runtime's calls (Ray); never api or cli
    api, cli              the facade and the command line: nothing imports them but the
                          root package (api) and users
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchaot"

# Imports that break a rule today, each with the reason; the test fails when one of them
# is gone too, so this list only ever shrinks.
KNOWN: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).is_dir() or (PACKAGE.parent / rel).with_suffix(".py").exists() \
        or any((PACKAGE.parent / rel.parent).glob(rel.name + ".*.so"))


def _imports(path: Path) -> set[str]:
    """Fully qualified names of what the module imports (`from a import b` counts as
    a.b when b is a module of the package, else as a)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            subs = [f"{target}.{a.name}" for a in node.names if _is_package(f"{target}.{a.name}")]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(target)
    return found


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "batchaot"


def _in(target: str, *prefixes: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _violations(importers, forbidden) -> set[tuple[str, str]]:
    """(module, import) pairs where a module matching `importers` imports `forbidden`."""
    return {(m, t) for m, targets in GRAPH.items() if importers(m) for t in targets if forbidden(t)}


def _check(found: set[tuple[str, str]]) -> None:
    unexpected = sorted(found - KNOWN)
    assert not unexpected, "layering broken:\n" + "\n".join(f"  {m} imports {t}" for m, t in unexpected)


def test_the_walk_sees_the_package() -> None:
    assert "batchaot.runtime.unit" in GRAPH and "batchaot.engine.run" in GRAPH
    assert "batchaot.compiler" in GRAPH["batchaot.checks.base"]
    assert "batchaot.native" in GRAPH["batchaot.engine.run"]


def test_io_and_native_are_leaves() -> None:
    allowed = ("batchaot.errors", "batchaot.io", "batchaot._native")
    _check(_violations(lambda m: _in(m, "batchaot.io", "batchaot.native"),
                       lambda t: _in(t, "batchaot") and not _in(t, *allowed)))


def test_compiler_imports_neither_engine_nor_runtime() -> None:
    _check(_violations(lambda m: _in(m, "batchaot.compiler"),
                       lambda t: _in(t, "batchaot.engine", "batchaot.runtime", "batchaot.checks",
                                     "batchaot.distributed",
                                     "batchaot.api", "batchaot.cli", "batchaot.result")))


def test_engine_reaches_no_layer_above_it_nor_the_root_package() -> None:
    _check(_violations(lambda m: _in(m, "batchaot.engine"),
                       lambda t: t == "batchaot" or _in(t, "batchaot.checks", "batchaot.runtime",
                                                        "batchaot.distributed", "batchaot.api",
                                                        "batchaot.cli", "batchaot.result", "batchaot.report")))


def test_checks_and_runtime_do_not_reach_up() -> None:
    _check(_violations(lambda m: _in(m, "batchaot.checks"),
                       lambda t: _in(t, "batchaot.runtime", "batchaot.distributed", "batchaot.api",
                                     "batchaot.cli", "batchaot.result")))
    _check(_violations(lambda m: _in(m, "batchaot.runtime"),
                       lambda t: t == "batchaot" or _in(t, "batchaot.distributed", "batchaot.api",
                                                        "batchaot.cli")))


def test_profiling_sits_beside_the_checks() -> None:
    _check(_violations(lambda m: _in(m, "batchaot.profile"),
                       lambda t: t == "batchaot" or _in(t, "batchaot.runtime", "batchaot.distributed",
                                                        "batchaot.api", "batchaot.cli", "batchaot.result")))
    _check(_violations(lambda m: _in(m, "batchaot.checks", "batchaot.engine", "batchaot.compiler",
                                     "batchaot.runtime"),
                       lambda t: _in(t, "batchaot.profile")))


def test_only_the_cli_and_the_root_package_import_the_api_facade() -> None:
    _check(_violations(lambda m: m not in ("batchaot", "batchaot.cli", "batchaot.api"),
                       lambda t: _in(t, "batchaot.api", "batchaot.cli")))


@pytest.mark.parametrize("library, owners", [
    ("ray", {"batchaot.distributed.actors", "batchaot.distributed.worker"}),
    ("click", {"batchaot.cli"}),
    ("batchaot._native", {"batchaot.native"}),
    ("sqlglot", {"batchaot.compiler.parse", "batchaot.compiler.limits", "batchaot.compiler.aggregate"}),
])
def test_one_door_to_each_library(library: str, owners: set[str]) -> None:
    importers = {m for m, targets in GRAPH.items() if any(_in(t, library) for t in targets)}
    assert importers == owners


def test_known_exceptions_are_still_there() -> None:
    """An exception that no longer happens must leave KNOWN (so the rules tighten)."""
    everything = {(m, t) for m, targets in GRAPH.items() for t in targets}
    assert KNOWN <= everything, sorted(KNOWN - everything)


def test_a_ray_worker_loads_no_numba_before_its_constructor() -> None:
    """The actor's module (and the packages above it) import neither Numba nor the
    compiler: the constructor sets the worker's environment (one Numba thread, the
    driver's Numba cache) before they are first imported."""
    code = ("import sys, batchaot.distributed.worker; "
            "print([m for m in ('numba', 'sqlglot', 'batchaot.compiler', 'batchaot.engine') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
