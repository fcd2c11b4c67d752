"""Ray: worker actors that each own a C memory pool, the optimizer's programs and a
UnitRunner, fed work units by the driver. The only module that imports ray."""
from __future__ import annotations

import logging
import os
from collections import deque
from typing import Callable, Sequence

import ray
from ray.exceptions import RayError

from ..engine.unit import UnitResult, UnitRunner
from ..io.units import WorkUnit

IN_FLIGHT_PER_WORKER = 2      # one running, one queued: no idle gap between units
MAX_RESTARTS = 4              # a killed worker comes back this often ...
MAX_TASK_RETRIES = 4          # ... and its unit is redone (calls are at-least-once)


@ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
class Worker:
    """Rebuilt from its arguments alone when Ray restarts it."""

    def __init__(self, program_blobs: list[bytes], output: str | None, csv: dict | None):
        self.runner = UnitRunner(program_blobs, output, csv)

    def run(self, unit: WorkUnit) -> UnitResult:
        return self.runner.run(unit)

    def pid(self) -> int:
        return os.getpid()


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


def run_units(units: Sequence[WorkUnit], program_blobs: list[bytes], output: str | None,
              csv: dict | None, workers: int, on_result: Callable[[UnitResult], None],
              on_workers: Callable[[list], None] | None = None) -> None:
    """Validate every unit on `workers` actors; `on_result` sees each unit's result once."""
    # Programs travel by value (a few KB): a restarted actor must never depend on an
    # object-store entry that could be gone by then.
    actors = [Worker.options(num_cpus=1).remote(program_blobs, output, csv)
              for _ in range(min(workers, len(units)))]
    if on_workers is not None:
        on_workers(actors)
    queue = deque(units)
    pending: dict = {}
    try:
        for actor in actors:
            for _ in range(IN_FLIGHT_PER_WORKER):
                _submit(queue, actor, pending)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor, unit = pending.pop(ready[0])
            on_result(_result(ready[0], unit))
            _submit(queue, actor, pending)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


def _submit(queue: deque, actor, pending: dict) -> None:
    if queue:
        unit = queue.popleft()
        pending[actor.run.remote(unit)] = (actor, unit)


def _result(ref, unit: WorkUnit) -> UnitResult:
    try:
        return ray.get(ref)
    except RayError as exc:   # a bug in the worker, or it died more often than Ray restarts it
        cause = getattr(exc, "cause", None) or exc
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[-1] if lines else ''}"
        return UnitResult(unit.id, unit.path, 0, None, None, error=f"{unit.path}: worker failed: {reason}")


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
