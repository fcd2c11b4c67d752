"""Ray: worker actors that each own a UnitRunner (and so its Executor's C memory pool and
the compiled programs), fed work units by the driver, then reducing the dataset checks'
buckets. The only module that imports ray.

:class:`Actors` is a placer for runtime.plan.UnitsRun: its three methods make the same
calls as the runtime's InProcess placer, on the actors; nothing here runs a rule.
"""
from __future__ import annotations

import logging
import os
import pickle
import time
from collections import deque
from typing import Callable, Sequence

import ray
from ray.exceptions import RayError

import pyarrow as pa

from ..errors import DataError, OutputError, ResourceError
from ..io.memory import use_process_pool
from ..io.sinks import ignore_file_size_signal
from ..io.units import WorkUnit
from ..runtime.plan import UnitsRun
from ..runtime.quarantine import Quarantine, QuarantineResult
from ..runtime.settle import bucket_count, reduce_bucket, shared_states
from ..runtime.unit import UnitResult, UnitRunner

IN_FLIGHT_PER_WORKER = 2      # one running, one queued: no idle gap between units
MAX_RESTARTS = 4              # a killed worker comes back this often ...
MAX_TASK_RETRIES = 4          # ... and its unit is redone (calls are at-least-once)


@ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
class Worker:
    """Rebuilt from its arguments alone when Ray restarts it."""

    def __init__(self, program_blobs: list[bytes], check_blob: bytes, output: str | None,
                 csv: dict | None, layout: pa.Schema | None = None, engine: str = "auto",
                 hook: str | None = None, split_to: Quarantine | None = None):
        ignore_file_size_signal()       # a part past `ulimit -f` is an error, not a dead worker
        use_process_pool()              # a worker process is batchaot's own (io/memory.py)
        self.output = output
        self.runner = UnitRunner(program_blobs, output, csv, checks=pickle.loads(check_blob),
                                 layout=layout, engine=engine, split_to=split_to)
        self._shared: list = [None] * len(self.runner.checks)
        self._hook = TestHook(hook)

    def run(self, unit: WorkUnit, shared: list):
        """The unit's result, then one object per bucket of its bucketed checks."""
        self._hook.enter("run", unit.id)
        self._take_shared(shared)
        result, buckets = self.runner.run_split(unit)
        self._hook.leave("run")
        return (result, *buckets) if buckets else result

    def _take_shared(self, shared: list) -> None:
        """Shared states (a reference check's key set, built once by the driver) come as
        references with each unit and are fetched once per process: a restarted actor
        fetches them again, and a constructor never holds object-store references."""
        for i, ref in enumerate(shared):
            if ref is not None and self._shared[i] != ref:
                self.runner.checks[i].use_shared_state(ray.get(ref))
                self._shared[i] = ref

    def run_side(self, check_index: int, unit: WorkUnit):
        """A unit of a check's side input (a referenced dataset): its head, then its buckets."""
        head, buckets = self.runner.run_side(check_index, unit)
        return (head, *buckets)

    def reduce(self, check_index: int, bucket: int, *piece_lists: list):
        self._hook.enter("reduce", f"{check_index}-{bucket}")
        result = reduce_bucket(self.runner.checks[check_index], check_index, bucket,
                               list(piece_lists), self.output, self.runner.layout)
        self._hook.leave("reduce")
        return result

    def quarantine(self, unit: WorkUnit) -> QuarantineResult:
        """The unit's rows split into valid/ and invalid/ parts (after the checks settled)."""
        self._hook.enter("quarantine", unit.id)
        result = self.runner.quarantine(unit)
        self._hook.leave("quarantine")
        return result

    def pid(self) -> int:
        return os.getpid()


HOOK_ENV = "BATCHAOT_TEST_HOOK"


class TestHook:
    """Fault injection for tests; off unless the driver's environment has
    ``BATCHAOT_TEST_HOOK=<folder>[:crash=<method>][:hold=<method>]`` (passed to the actors as
    an argument, so a restarted actor has it too). Every call of ``run`` / ``reduce`` /
    ``quarantine`` appends
    "<method> <key> <pid>" to <folder>/attempts, so a test sees which calls were redone and
    by which process. With ``crash=<method>``, the first such call of the whole job does its
    work (writes its part file) and then ends its process with ``os._exit``, as a kill would,
    before returning — after creating <folder>/crashed, so the retry goes through. With
    ``hold=<method>``, the first such call writes <folder>/held and then waits, so a test
    can kill its process from outside at a moment known to be inside the call."""

    __test__ = False                    # not a pytest class
    HOLD_SECONDS = 300

    def __init__(self, spec: str | None):
        self.folder, *options = (spec or "").split(":")
        modes = dict(option.partition("=")[::2] for option in options)
        self.crash, self.hold = modes.get("crash"), modes.get("hold")
        self._key: str | None = None

    def enter(self, method: str, key: str) -> None:
        if not self.folder:
            return
        self._key = key
        with open(os.path.join(self.folder, "attempts"), "a", encoding="utf-8") as fh:
            fh.write(f"{method} {key} {os.getpid()}\n")
        if method == self.hold and self._first(method, "held"):
            time.sleep(self.HOLD_SECONDS)

    def leave(self, method: str) -> None:
        if self.folder and method == self.crash and self._first(method, "crashed"):
            os._exit(1)

    def _first(self, method: str, marker: str) -> bool:
        """Creates <folder>/<marker> naming this call, unless an earlier call did."""
        try:
            fd = os.open(os.path.join(self.folder, marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, f"{method} {self._key} {os.getpid()}\n".encode())
        os.close(fd)
        return True


def worker_env() -> dict:
    """Each worker gets one CPU from Ray and must not spawn threads beyond it."""
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    if os.environ.get("NUMBA_CACHE_DIR"):
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    return env


class Cluster:
    """A Ray connection for one job: started here (embedded) or joined (--address)."""

    def __init__(self, address: str | None, workers: int | None):
        self.started = False
        if ray.is_initialized():
            self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
            return
        kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                      runtime_env={"env_vars": worker_env()})
        if address is None:
            workers = workers or os.cpu_count() or 1
            ray.init(num_cpus=workers, **kwargs)
        else:
            ray.init(address=address, **kwargs)
        self.started = True
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        if self.started:
            ray.shutdown()


class Actors:
    """Worker actors for one run (a placer of runtime.plan.UnitsRun): they validate units,
    then reduce the checks' buckets."""

    def __init__(self, workers: int, run: UnitsRun):
        checks = run.plan.checks
        # Programs and checks travel by value (a few KB): a restarted actor must never
        # depend on an object-store entry that could be gone by then. Shared states (a
        # reference check's key set) are put once; this driver owns them until the end.
        self._shared = [_put(state) for state in shared_states(checks)]
        self.checks = checks
        blobs = [p.to_bytes() for p in run.plan.programs]
        blob = pickle.dumps(checks)
        hook = os.environ.get(HOOK_ENV)
        # the worker's environment goes with the actor too: a Ray the user started has not
        # got it, and a worker must not spawn threads beyond its one CPU
        options = dict(num_cpus=1, runtime_env={"env_vars": worker_env()})
        self.actors = [Worker.options(**options).remote(blobs, blob, run.output, run.csv, run.plan.layout,
                                                        run.engine, hook, run.split_to)
                       for _ in range(workers)]
        self.bucket_count = sum(bucket_count(c) for c in checks)

    def run_units(self, units: Sequence[WorkUnit],
                  on_result: Callable[[UnitResult, list], None]) -> None:
        """Validate every unit; `on_result(result, bucket_refs)` sees each unit once."""
        def call(actor, unit: WorkUnit):
            return _call(actor.run, 1 + self.bucket_count, unit, self._shared)
        self._stream(units, call, lambda ref, unit, rest: on_result(_result(ref, unit), rest))

    def run_sides(self, jobs: list[tuple[int, WorkUnit]],
                  on_side: Callable[[int, object, list], None]) -> None:
        """Map the (check, unit) side-input units; `on_side(check, head, bucket_refs)`."""
        def call(actor, job: tuple[int, WorkUnit]):
            return _call(actor.run_side, 1 + bucket_count(self.checks[job[0]]), *job)
        self._stream(jobs, call, lambda ref, job, rest: on_side(job[0], _side(ref, job[1]), rest))

    def _stream(self, items: Sequence, call: Callable, done: Callable) -> None:
        """Feed items to the actors, IN_FLIGHT_PER_WORKER at a time each, in order."""
        queue = deque(items)
        pending: dict = {}

        def submit(actor) -> None:
            if queue:
                item = queue.popleft()
                first, rest = call(actor, item)
                pending[first] = (actor, item, rest)

        for actor in self.actors:
            for _ in range(IN_FLIGHT_PER_WORKER):
                submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor, item, rest = pending.pop(ready[0])
            done(ready[0], item, rest)
            submit(actor)

    def reduce(self, jobs: list[tuple[int, int, list]]) -> dict:
        """Finish buckets on the actors, IN_FLIGHT_PER_WORKER at a time each (an actor
        holds the inputs of the calls queued on it): {(check, bucket): BucketResult}."""
        results: dict = {}

        def call(actor, job: tuple[int, int, list]):
            return _call(actor.reduce, 1, *job[:2], *job[2])

        def done(ref, job: tuple[int, int, list], _rest) -> None:
            try:
                results[job[:2]] = ray.get(ref)
            except RayError as exc:
                _raise_fatal(exc)
                raise DataError(f"reducing dataset checks failed: {_reason(exc)}") from None

        self._stream(jobs, call, done)
        return results

    def quarantine(self, units: Sequence[WorkUnit], on_split: Callable[[QuarantineResult], None]) -> None:
        """Split every unit's rows on the actors; `on_split(result)` sees each unit."""
        def call(actor, unit: WorkUnit):
            return _call(actor.quarantine, 1, unit)
        self._stream(units, call, lambda ref, unit, _rest: on_split(_split(ref, unit)))

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self._shared = []


def _call(method, returns: int, *args) -> tuple:
    """Call an actor method with `returns` results: (first ref, refs of the others)."""
    refs = method.options(num_returns=returns).remote(*args)
    return (refs[0], refs[1:]) if returns > 1 else (refs, [])


def _side(ref, unit: WorkUnit):
    try:
        return ray.get(ref)
    except RayError as exc:      # the check cannot be settled without its whole side input
        _raise_fatal(exc)
        raise DataError(f"{unit.path}: reading the referenced dataset failed: {_reason(exc)}") from None


def _put(state):
    return None if state is None else ray.put(state)


def _raise_fatal(exc: RayError) -> None:
    """Failures that end the whole run (exit 2), not one unit: the output cannot be
    written, or a worker ran out of memory."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, OutputError):
        raise OutputError(str(cause)) from None
    if isinstance(cause, MemoryError):
        raise ResourceError("a worker ran out of memory (MemoryError); give the workers more "
                            "memory or split the data into more files") from None


def _result(ref, unit: WorkUnit) -> UnitResult:
    try:
        return ray.get(ref)
    except RayError as exc:   # a bug in the worker, or it died more often than Ray restarts it
        _raise_fatal(exc)
        return UnitResult(unit.id, unit.path, 0, None, None,
                          error=f"{unit.path}: worker failed: {_reason(exc)}")


def _split(ref, unit: WorkUnit) -> QuarantineResult:
    try:
        return ray.get(ref)
    except RayError as exc:
        _raise_fatal(exc)
        return QuarantineResult(unit.id, error=f"{unit.path}: worker failed splitting its rows: {_reason(exc)}")


def _reason(exc: RayError) -> str:
    cause = getattr(exc, "cause", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


@ray.remote(num_cpus=1)
def _compile_chunk(files: list[str], schema_bytes: bytes, cache_root: str):
    import pyarrow as pa

    from .compile_job import compile_files
    schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
    return compile_files(files, schema, cache_root)


def compile_chunks(file_chunks: list[list[str]], schema, address: str | None,
                   workers: int | None):
    """Compile chunks of rules files as Ray tasks; rows come back in file order."""
    import pyarrow as pa

    from ..compiler.cache import cache_root
    cluster = Cluster(address, workers)
    try:
        schema_bytes = schema.serialize().to_pybytes()
        refs = [_compile_chunk.remote(chunk, schema_bytes, cache_root()) for chunk in file_chunks]
        return pa.concat_tables(ray.get(refs))
    finally:
        cluster.close()
