"""Evaluate compiled Programs over Arrow record batches: the VM or the fused JIT tier.

An :class:`Executor` owns one C memory pool (VM registers come from it) and caches the
inputs of the batch at hand, so rules that share a column load it once and string
lookup tables are built once per dictionary.

Engines: ``vm`` interprets each program block by block and starts instantly;
``fused`` runs generated kernels (engine/fused/) that check a whole rule set in one
pass, 2-5x faster on numeric rules, but cost a compile (~0.5-2 s) the first time a
rule-set shape is seen on a machine; afterwards they load from the disk cache in
~10 ms. ``auto`` (the default) weighs the two per rule set (:meth:`Executor.engine_for`):

- in a process that has not loaded Numba, while the rows it checked so far stay within
  aot.AOT_MAX_ROWS: the VM compiled ahead of time (engine/aot.py, built by `batchaot
  warmup`), on one thread; Numba's start-up (~0.5 s) is more than such rows take.
  Beyond, Numba is loaded;
- below AUTO_MIN_ROWS rows: the VM (nothing to win that a user would notice); likewise
  when one program exceeds AUTO_MAX_PROGRAM instructions (its compile would not end soon);
- fused when the time it saves, rows x instructions x AUTO_SAVED_NS_PER_ROW_INSTRUCTION
  (measured: 0.26-0.49 ns, see benchmarks/bench_engines.py), exceeds the compile time
  still to pay: zero when the kernels are in memory or in the disk cache, else
  fused.Plan.compile_seconds. So a cached set runs fused from 100,000 rows, while a
  cold compile of the 6 numeric demo rules needs ~50M rows to pay for itself in one
  run;
- otherwise the VM, and from AUTO_BACKGROUND_ROWS rows the kernels are compiled on a
  background thread meanwhile: the rest of a stream, and the next run on the
  machine, find them cached.

"Rows" are every batch of one :meth:`Executor.evaluate` call when the batches come as
a list, else the rows this Executor has seen for the rule set so far (a worker fed
batch by batch starts on the VM and switches once the rows add up).

``threads > 1`` splits each batch into that many row ranges evaluated concurrently
(both engines' JIT kernels release the GIL; the ahead-of-time exports hold it, so a
run on them uses one range); row ids come back in ascending order, identical to a
serial run.
"""
from __future__ import annotations

import functools
import json
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pyarrow as pa

from ..compiler import sqltext
from ..compiler.program import Program
from ..compiler.types import from_arrow
from ..errors import DataError
from ..native import Pool
from . import aot, columns, parallel, strings
from .buffers import BLOCK, Buffers

if TYPE_CHECKING:
    from . import fused

_REG_BYTES = BLOCK * 8
POOL_REGISTERS = 64          # registers per pooled block; larger programs count a pool miss
ENGINES = ("vm", "fused", "auto")
AUTO_MIN_ROWS = 100_000          # below: the VM, whatever the cache holds
AUTO_MAX_PROGRAM = 300           # a longer single program stays on the VM: Numba's compile
                                 # time grows faster than linearly in it (550 instructions:
                                 # 56 s, a 4,500-value IN list: no end in sight)
AUTO_SAVED_NS_PER_ROW_INSTRUCTION = 0.3   # fused vs VM, measured (module docstring)
AUTO_BACKGROUND_ROWS = 1_000_000 # from here, compile in the background while the VM runs
PARALLEL_MIN_ROWS = 65_536       # smaller batches are not worth splitting across threads
PARALLEL_LUT_VALUES = 65_536     # smaller lookup tables are built by one thread


@dataclass
class RuleOutcome:
    """What one rule found in the data it saw."""

    name: str
    rows: int = 0
    violations: int = 0
    nulls: int = 0                       # rows whose predicate was NULL
    overflows: int = 0                   # ... of which an integer overflow made NULL
    zero_tick: bool = False
    row_chunks: list = field(default_factory=list)   # violating row ids, as found (shape kernels)
    bitmaps: list = field(default_factory=list)      # (first row, rows, uint64 words): a bit per row

    def absorb(self, other: "RuleOutcome", row_base: int) -> None:
        """Add `other`'s counts and violating rows, its row 0 being row `row_base` here."""
        self.rows += other.rows
        self.violations += other.violations
        self.nulls += other.nulls
        self.overflows += other.overflows
        self.row_chunks += [chunk + row_base for chunk in other.row_chunks]
        self.bitmaps += [(first + row_base, n, words) for first, n, words in other.bitmaps]

    @property
    def row_ids(self) -> np.ndarray:
        """Violating row numbers, ascending; derived from the bitmaps when asked for."""
        parts = list(self.row_chunks) + [first + aot.call("bitmap_rows", words, n) for first, n, words in self.bitmaps]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        ids = np.concatenate(parts)
        return ids if not (self.row_chunks and self.bitmaps) else np.sort(ids)



def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


@functools.lru_cache(maxsize=256)
def _type_text(t: pa.DataType) -> str:
    """The compiler's name of an Arrow type (asked for every column of every batch)."""
    return str(from_arrow(t))


class _LutCache:
    """The lookup tables of the last dictionary seen per (column, expression), across
    batches: the row groups of a Parquet file (one batch each) come with equal
    dictionaries of their own, whose tables are then built once, not once per batch."""

    MAX_VALUES = 1 << 16            # larger dictionaries are not kept past their batch

    def __init__(self):
        self._last: dict[tuple, tuple[pa.Array, tuple[np.ndarray, np.ndarray]]] = {}

    def get(self, key: tuple, dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
        hit = self._last.get(key)
        return hit[1] if hit is not None and hit[0].equals(dictionary) else None

    def put(self, key: tuple, dictionary: pa.Array, lut: tuple[np.ndarray, np.ndarray]) -> None:
        if len(dictionary) <= self.MAX_VALUES:
            self._last[key] = (dictionary, lut)


class _BatchInputs:
    """Columns and lookup tables of one batch, loaded on first use.

    With `map_fn` (run fn(*item) for each item, concurrently) and `parts` > 1, the
    lookup table of a large dictionary (a mostly-distinct string column is its own
    dictionary) is evaluated in `parts` slices at once; the Numba kernels and pyarrow
    release the GIL. :meth:`preload` does the same for a whole rule set's inputs at once.
    """

    def __init__(self, batch: pa.RecordBatch, map_fn=None, parts: int = 1, cache: _LutCache | None = None):
        self.batch = batch
        self._map, self._parts = map_fn, parts
        self._cache = cache if cache is not None else _LutCache()
        self._cols: dict[tuple[str, str], columns.Loaded] = {}
        self._luts: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def column(self, name: str, type_text: str) -> columns.Loaded:
        key = (name, type_text)
        if key not in self._cols:
            idx = self.batch.schema.get_field_index(name)
            if idx < 0:
                raise DataError(f"column '{name}' is missing from the data")
            field_type = self.batch.schema.field(idx).type
            typ = columns.parse_type(type_text)
            if type_text == "varchar" and not _is_text(field_type):
                # CAST(x AS VARCHAR) of a non-string column: DuckDB's text of its values
                self._cols[key] = columns.load(sqltext.to_text(self.batch.column(idx)), typ)
                return self._cols[key]
            if not pa.types.is_null(field_type) and _type_text(field_type) != type_text:
                raise DataError(f"column '{name}' is {field_type} here but the rules were "
                                f"compiled for {type_text}")
            try:
                self._cols[key] = columns.load(self.batch.column(idx), typ)
            except DataError as exc:      # a value the rules cannot read (uint64 >= 2^63)
                raise DataError(f"column '{name}': {exc}") from None
        return self._cols[key]

    def lut(self, name: str, type_text: str, sexpr: list, result: str, wide: bool = False):
        """(values, validity) of a lookup table; `wide`: values as int64 words (the VM's)."""
        key = (name, json.dumps([sexpr, result]))
        if key not in self._luts:
            col = self.column(name, type_text)
            other = strings.partner(sexpr)
            if other is not None:     # two string columns: codes in their joint dictionary
                partner = self.column(other, "varchar").dictionary
                self._luts[key] = strings.joint_lut(sexpr, col.dictionary, partner)
            else:
                lut = self._cache.get(key, col.dictionary)
                if lut is None:
                    lut = self._build_lut(col.dictionary, sexpr, columns.parse_type(result))
                    self._cache.put(key, col.dictionary, lut)
                self._luts[key] = lut
        values, valid = self._luts[key]
        if not wide or values.dtype == np.int64:
            return values, valid
        wide_key = key + ("wide",)
        if wide_key not in self._luts:
            self._luts[wide_key] = (values.astype(np.int64), valid)
        return self._luts[wide_key]

    def preload(self, wanted: Iterable[tuple[str, str]], luts: Iterable[tuple[str, str, list, str]],
                submit) -> None:
        """Load these columns (name, type) and build these lookup tables (name, type,
        sexpr, result) concurrently with `submit` (fn, *args) -> Future.

        A table's parts are queued as soon as its column is loaded, so evaluating a
        regexp over a mostly-distinct column overlaps dictionary-encoding another one,
        instead of waiting for every column first.
        """
        tables: dict[tuple[str, str], list[tuple[list, str]]] = {}
        for name, type_text, sexpr, result in luts:
            tables.setdefault((name, type_text), []).append((sexpr, result))
        futures: list = []
        lock = threading.Lock()
        builds: dict[tuple[str, str], columns.LutBuild] = {}

        def queue(fn, *args) -> None:
            with lock:
                futures.append(submit(fn, *args))

        def load(key: tuple[str, str]) -> None:
            col = self.column(*key)          # distinct keys: the dict writes do not clash
            for sexpr, result in tables.get(key, ()):
                lut_key = (key[0], json.dumps([sexpr, result]))
                if lut_key in self._luts or lut_key in builds or strings.partner(sexpr) is not None:
                    continue          # (a joint table needs two columns: lut() builds it)
                known = self._cache.get(lut_key, col.dictionary)
                if known is not None:
                    self._luts[lut_key] = known
                    continue
                # twice as many parts as threads: smaller parts even out when one thread
                # is still encoding another column
                parts = 2 * self._parts if len(col.dictionary) >= PARALLEL_LUT_VALUES else 1
                build = builds[lut_key] = columns.LutBuild(col.dictionary, sexpr, columns.parse_type(result), parts)
                for k in range(build.parts):
                    queue(build.run, k)

        for key in dict.fromkeys([*wanted, *tables]):
            queue(load, key)
        done = 0
        while True:           # a load queues its tables' parts before it completes
            with lock:
                if done == len(futures):
                    break
                future = futures[done]
            future.result()
            done += 1
        for lut_key, build in builds.items():
            self._luts[lut_key] = build.result()
            self._cache.put(lut_key, build.dictionary, self._luts[lut_key])

    def _build_lut(self, dictionary: pa.Array, sexpr: list, typ) -> tuple[np.ndarray, np.ndarray]:
        if self._map is None or self._parts < 2 or len(dictionary) < PARALLEL_LUT_VALUES:
            return columns.build_lut(dictionary, sexpr, typ)
        return columns.build_lut(dictionary, sexpr, typ, self._map, self._parts)


class Executor:
    """Runs Programs on batches; one per worker, owning its register pool.

    `engine`: 'vm', 'fused' or 'auto' (module docstring); `threads`: row ranges of a
    batch evaluated concurrently. ``stats`` counts the batches each engine ran.
    """

    def __init__(self, pool: Pool | None = None, engine: str = "auto", threads: int = 1):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, not {threads!r}")
        self.pool = pool if pool is not None else Pool(block_bytes=POOL_REGISTERS * _REG_BYTES,
                                                       nblocks=8)
        self.engine = engine
        self.threads = threads
        self.stats: Counter = Counter()
        self._expected_rows: int | None = None        # rows of the evaluate() call at hand
        self._rows_seen: dict[tuple, int] = {}
        self._plans: dict[tuple, fused.Plan] = {}
        self._scratch: dict[tuple[int, int], fused.Scratch] = {}
        self._workers: ThreadPoolExecutor | None = None
        self._compiler: ThreadPoolExecutor | None = None      # auto: background compiles
        self._compiling: dict[fused.Plan, Future] = {}
        self._lut_cache = _LutCache()

    def close(self) -> None:
        """Stop the worker threads; waits for a background compile to finish."""
        for pool in (self._workers, self._compiler):
            if pool is not None:
                pool.shutdown()
        self._workers = self._compiler = None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def evaluate(self, programs: list[Program], batches: Iterable[pa.RecordBatch]) -> list[RuleOutcome]:
        outcomes = [RuleOutcome(p.name, zero_tick=p.zero_tick) for p in programs]
        row_base = 0
        if isinstance(batches, (list, tuple)):
            self._expected_rows = sum(b.num_rows for b in batches)
            aot.keep_ahead(self._expected_rows, count=False)     # all of it, or Numba now
        try:
            for batch in batches:
                self.evaluate_batch(programs, batch, row_base, outcomes)
                row_base += batch.num_rows
        finally:
            self._expected_rows = None
        return outcomes

    def evaluate_batch(self, programs: list[Program], batch: pa.RecordBatch, row_base: int,
                       outcomes: list[RuleOutcome]) -> None:
        n = batch.num_rows
        for res in outcomes:
            res.rows += n
        live = [k for k, prog in enumerate(programs) if not prog.zero_tick]
        if n == 0 or not live:
            return
        key = tuple(programs[k] for k in live)
        self._rows_seen[key] = self._rows_seen.get(key, 0) + n
        ahead = self._ahead_of_time(n)
        if self.threads > 1 and n >= PARALLEL_MIN_ROWS and not ahead:
            inputs = _BatchInputs(batch, self._map, self.threads, self._lut_cache)
            inputs.preload([c for prog in key for c in prog.columns],
                           [(*prog.columns[ci], sexpr, result) for prog in key for ci, sexpr, result in prog.luts],
                           self._submit)
        else:
            inputs = _BatchInputs(batch, cache=self._lut_cache)
        ranges = [(0, n)] if ahead else self._ranges(n)
        if not ahead and self.engine_for(key, inputs) == "fused":
            self.stats["fused_batches"] += 1
            self._run_fused(self._plan(key), live, inputs, row_base, ranges, outcomes)
        else:
            self.stats["vm_batches"] += 1
            self._run_vm([(k, programs[k]) for k in live], inputs, row_base, ranges, outcomes)

    # -- choosing the engine ----------------------------------------------------------
    def _ahead_of_time(self, n: int) -> bool:
        """Whether this batch of `n` rows runs on the VM's ahead-of-time exports, on one
        thread (engine/aot.py: small work in a process that has not loaded Numba). Else
        Numba is loaded here, before any kernel of the batch runs."""
        if self.engine == "fused":
            aot.use_jit()
            return False
        return aot.keep_ahead(n)

    def engine_for(self, programs: tuple[Program, ...], inputs: _BatchInputs) -> str:
        """'vm' or 'fused' for this rule set and batch (the cost model: module docstring)."""
        if self.engine != "auto":
            return self.engine
        rows = self._expected_rows or self._rows_seen.get(programs, 0)
        if rows < AUTO_MIN_ROWS or max(len(p.code) for p in programs) > AUTO_MAX_PROGRAM:
            return "vm"
        plan = self._plan(programs)
        cols = [inputs.column(name, t) for name, t in plan.rset.columns]
        pending = self._compiling.get(plan)
        if pending is not None and (not pending.done() or pending.exception() is not None):
            return "vm"                     # still compiling (or it failed: stay on the VM)
        compile_s = plan.compile_seconds([c.bitoff >= 0 for c in cols], [c.layout for c in cols])
        saved_s = rows * plan.rset.instructions * AUTO_SAVED_NS_PER_ROW_INSTRUCTION * 1e-9
        if saved_s > compile_s:
            return "fused"
        if rows >= AUTO_BACKGROUND_ROWS and pending is None:
            self._compile_later(plan, inputs)
        return "vm"

    def _compile_later(self, plan: fused.Plan, inputs: _BatchInputs) -> None:
        """Compile the set's kernels on a background thread while the VM runs.

        The data at hand would not pay for a compile, but it is large enough that the
        next run over it (or the rest of this stream) will: afterwards the kernels are
        in memory and on disk, and the cost model finds them cached.
        """
        cols = [inputs.column(name, t) for name, t in plan.rset.columns]
        luts = [inputs.lut(plan.rset.columns[g][0], plan.rset.columns[g][1], sexpr, result)
                for g, sexpr, result in plan.rset.luts]
        if self._compiler is None:
            self._compiler = ThreadPoolExecutor(1, thread_name_prefix="batchaot-jit")
        self._compiling[plan] = self._compiler.submit(plan.bind, cols, luts)
        self.stats["background_compiles"] += 1

    def _plan(self, programs: tuple[Program, ...]) -> fused.Plan:
        if programs not in self._plans:
            from . import fused                     # Numba: only for the fused tier
            self._plans[programs] = fused.Plan(programs)
        return self._plans[programs]

    # -- running over row ranges ----------------------------------------------------------
    def _ranges(self, n: int) -> list[tuple[int, int]]:
        """Row ranges of a batch for the threads; every edge but the last is a multiple of
        64, so two ranges never write the same word of a violation bitmap."""
        return parallel.word_ranges(n, self.threads if n >= PARALLEL_MIN_ROWS else 1)

    def _map(self, fn, items: list) -> list:
        if len(items) == 1:
            return [fn(*items[0])]
        return list(self._thread_pool().map(lambda args: fn(*args), items))

    def _submit(self, fn, *args) -> Future:
        return self._thread_pool().submit(fn, *args)

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._workers is None:
            self._workers = ThreadPoolExecutor(self.threads, thread_name_prefix="batchaot")
        return self._workers

    def _run_fused(self, plan: fused.Plan, targets: list[int], inputs: _BatchInputs, row_base: int,
                   ranges: list[tuple[int, int]], outcomes: list[RuleOutcome]) -> None:
        rset = plan.rset
        cols = [inputs.column(name, t) for name, t in rset.columns]
        luts = [inputs.lut(rset.columns[g][0], rset.columns[g][1], sexpr, result)
                for g, sexpr, result in rset.luts]
        bound = plan.bind(cols, luts)
        n = inputs.batch.num_rows
        bits = np.empty((plan.nrules, (n + 63) >> 6), dtype=np.uint64) if bound.writes_bits else None

        def work(part: int, lo: int, hi: int):
            return bound.run(lo, hi, row_base, self._scratch_for(plan.nrules, part), bits)

        found = np.zeros(len(targets), dtype=np.int64)
        for counts, chunks in self._map(work, [(p, lo, hi) for p, (lo, hi) in enumerate(ranges)]):
            found += counts[:, 0]
            for r, k in enumerate(targets):
                res = outcomes[k]
                res.violations += int(counts[r, 0])
                res.nulls += int(counts[r, 1])
                res.overflows += int(counts[r, 2])
                res.row_chunks.extend(chunks[r])
        if bits is not None:
            for r in np.flatnonzero(found):           # a passing rule keeps no bitmap
                outcomes[targets[r]].bitmaps.append((row_base, n, bits[r]))

    def _scratch_for(self, nrules: int, part: int) -> fused.Scratch:
        # one buffer per (rule count, thread slot): ranges of one batch never share one
        key = (nrules, part)
        if key not in self._scratch:
            from . import fused
            self._scratch[key] = fused.Scratch(nrules)
        return self._scratch[key]

    def _run_vm(self, items: list[tuple[int, Program]], inputs: _BatchInputs, row_base: int,
                ranges: list[tuple[int, int]], outcomes: list[RuleOutcome]) -> None:
        for _, prog in items:     # load inputs here: _BatchInputs is not thread-safe
            for name, t in prog.columns:
                inputs.column(name, t)
            for ci, sexpr, result in prog.luts:
                inputs.lut(prog.columns[ci][0], prog.columns[ci][1], sexpr, result, wide=True)
        nregs = max(prog.nregs for _, prog in items)
        n = inputs.batch.num_rows
        bits = np.empty((len(items), (n + 63) >> 6), dtype=np.uint64)     # every word gets written
        taken = [(self.pool.take(nregs * _REG_BYTES), self.pool.take(nregs * BLOCK)) for _ in ranges]
        try:
            def work(part: int, lo: int, hi: int):
                regs, valid = taken[part]
                R = regs.view(np.int64)[:nregs * BLOCK].reshape(nregs, BLOCK)
                V = valid[:nregs * BLOCK].reshape(nregs, BLOCK)
                return [(k, *self.run_program(prog, inputs, bits[j, lo >> 6:], lo, hi, (R, V)))
                        for j, (k, prog) in enumerate(items)]

            found = np.zeros(len(items), dtype=np.int64)
            for part in self._map(work, [(p, lo, hi) for p, (lo, hi) in enumerate(ranges)]):
                for j, (k, nviol, nnull, novf) in enumerate(part):
                    found[j] += nviol
                    outcomes[k].violations += nviol
                    outcomes[k].nulls += nnull
                    outcomes[k].overflows += novf
            for j in np.flatnonzero(found):           # a passing rule keeps no bitmap
                outcomes[items[j][0]].bitmaps.append((row_base, n, bits[j]))
        finally:
            for regs, valid in reversed(taken):
                self.pool.give(valid)
                self.pool.give(regs)

    def run_program(self, prog: Program, inputs: _BatchInputs, bits: np.ndarray,
                    lo: int = 0, hi: int | None = None,
                    registers: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[int, int, int]:
        """Run one program with the VM over rows [lo, hi) of the batch (default: all), its
        violations as bits of `bits` (bit 0 of word 0 is row lo): (violations, NULL verdicts,
        NULL verdicts from an integer overflow)."""
        hi = inputs.batch.num_rows if hi is None else hi
        loaded = [inputs.column(name, t) for name, t in prog.columns]
        luts = [inputs.lut(prog.columns[ci][0], prog.columns[ci][1], sexpr, result, wide=True)
                for ci, sexpr, result in prog.luts]
        cols = Buffers([c.words[lo:hi] for c in loaded], np.int64)
        bitmaps = Buffers([c.bitmap for c in loaded], np.uint8)
        bitoffs = np.array([c.bitoff + lo if c.bitoff >= 0 else -1 for c in loaded] or [0],
                           dtype=np.int64)
        lut_vals = Buffers([v for v, _ in luts], np.int64)
        lut_valid = Buffers([m for _, m in luts], np.uint8)
        args = (prog.code, prog.kval, prog.kvalid, cols.addr, cols.lens, bitmaps.addr, bitmaps.lens,
                bitoffs, lut_vals.addr, lut_vals.lens, lut_valid.addr, lut_valid.lens, hi - lo)
        if registers is not None:
            R, V = registers
            return aot.call("vm_run", *args, R, V, prog.strict, bits)
        regs = self.pool.take(prog.nregs * _REG_BYTES)
        valid = self.pool.take(prog.nregs * BLOCK)
        try:
            R = regs.view(np.int64).reshape(prog.nregs, BLOCK)
            V = valid.reshape(prog.nregs, BLOCK)
            return aot.call("vm_run", *args, R, V, prog.strict, bits)
        finally:
            self.pool.give(valid)
            self.pool.give(regs)
