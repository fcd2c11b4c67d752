"""Ray, the driver's side: worker actors (worker.py) that each own a UnitRunner (and so
its Executor's C memory pool and the compiled programs), fed work units by the driver,
then reducing the dataset checks' buckets. With worker.py, the only modules that import ray.

:class:`Actors` is a placer for runtime.plan.UnitsRun: its three methods make the same
calls as the runtime's InProcess placer, on the actors; nothing here runs a rule.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Callable, Sequence

import ray
from ray.exceptions import RayError

from ..errors import DataError, OutputError, ResourceError
from ..io.units import WorkUnit
from ..runtime.plan import UnitsRun
from ..runtime.quarantine import QuarantineResult
from ..runtime.settle import bucket_count, shared_states
from ..runtime.unit import UnitResult
from .worker import HOOK_ENV, Worker, compile_chunk, runner_config, worker_env

IN_FLIGHT_PER_WORKER = 2      # one running, one queued: no idle gap between units


class Cluster:
    """A Ray connection for one job: started here (embedded) or joined (--address)."""

    def __init__(self, address: str | None, workers: int | None):
        self.started = False
        if ray.is_initialized():
            self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
            return
        # no runtime environment: the workers' environment comes with each actor (worker.py)
        kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
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


class Launch:
    """Ray joined (or started) and the worker actors on their way, for a run that goes to
    Ray whatever its plan says (mode "ray", or an address): started before the driver
    reads the footers and compiles the rules, so Ray's start, the actors' processes and
    their imports overlap that work. `at_most`: actors to start now (each readable file
    is one unit or more, so as many as there are files are used unless files are
    skipped). :meth:`take` hands actors to the run, starting any it lacks; close() kills
    those it did not take and leaves a Ray it started."""

    def __init__(self, address: str | None, workers: int | None, at_most: int | None = None):
        self.cluster = Cluster(address, workers)
        try:
            self.members = start_members(min(self.cluster.workers, at_most or self.cluster.workers))
        except BaseException:
            self.cluster.close()
            raise

    @property
    def workers(self) -> int:
        return self.cluster.workers

    def take(self, n: int) -> list[tuple]:
        taken, self.members = self.members[:n], self.members[n:]
        return taken + start_members(n - len(taken))

    def close(self) -> None:
        try:
            for actor, _ in self.members:
                kill(actor)
        finally:
            self.members = []
            self.cluster.close()


class Actors:
    """Worker actors for one run (a placer of runtime.plan.UnitsRun): they validate units,
    then reduce the checks' buckets."""

    def __init__(self, members: list[tuple], run: UnitsRun, keep: bool = False):
        """`members`: the run's actors (start_members()), this placer's from now on."""
        checks = run.plan.checks
        self.members = members          # (actor, ref of its first pid)
        self.actors = [actor for actor, _ in members]
        self.checks, self.keep = checks, keep
        self.bucket_count = sum(bucket_count(c) for c in checks)
        try:
            # Shared states (a reference check's key set) and the runners' configuration
            # are put once; this driver owns them until the end, so an actor that Ray
            # restarts in the middle of the run finds them again with the call redone.
            self._shared = [_put(state) for state in shared_states(checks)]
            config = runner_config([p.to_bytes() for p in run.plan.programs], checks, run.output, run.csv,
                                   run.plan.layout, run.engine, os.environ.get(HOOK_ENV), run.split_to)
            self._config = [ray.put(config)]
        except BaseException:           # no run to close them: they go now
            for actor in self.actors:
                kill(actor)
            raise

    def run_units(self, units: Sequence[WorkUnit],
                  on_result: Callable[[UnitResult, list], None]) -> None:
        """Validate every unit; `on_result(result, bucket_refs)` sees each unit once."""
        def call(actor, unit: WorkUnit):
            return self._call(actor.run, 1 + self.bucket_count, unit, self._shared)
        self._stream(units, call, lambda ref, unit, rest: on_result(_result(ref, unit), rest))

    def run_sides(self, jobs: list[tuple[int, WorkUnit]],
                  on_side: Callable[[int, object, list], None]) -> None:
        """Map the (check, unit) side-input units; `on_side(check, head, bucket_refs)`."""
        def call(actor, job: tuple[int, WorkUnit]):
            return self._call(actor.run_side, 1 + bucket_count(self.checks[job[0]]), *job)
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
            return self._call(actor.reduce, 1, *job[:2], *job[2])

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
            return self._call(actor.quarantine, 1, unit)
        self._stream(units, call, lambda ref, unit, _rest: on_split(_split(ref, unit)))

    def _call(self, method, returns: int, *args) -> tuple:
        """Call an actor method, with the run's configuration, for `returns` results:
        (first ref, refs of the others)."""
        refs = method.options(num_returns=returns).remote(self._config, *args)
        return (refs[0], refs[1:]) if returns > 1 else (refs, [])

    def close(self) -> None:
        """Kill the actors, or keep them for the next run (keep_workers())."""
        if self.keep:
            KEPT.give(self.members)
        else:
            for actor in self.actors:
                kill(actor)
        self._shared, self._config = [], []


# -- actors kept between runs -----------------------------------------------------------

def kill(actor) -> None:
    """End a worker actor for good (no restart)."""
    ray.kill(actor, no_restart=True)


def start_members(n: int) -> list[tuple]:
    """n worker actors, kept ones first (keep_workers()), the rest new, each as (actor, the
    ref of its first call's answer: the pid of the process it started in)."""
    members = KEPT.take(n)
    for _ in range(n - len(members)):
        actor = Worker.options(num_cpus=1).remote(worker_env())
        members.append((actor, actor.pid.remote()))
    return members


def _session() -> tuple | None:
    """Which Ray this driver is connected to (actor handles are only good in it)."""
    if not ray.is_initialized():
        return None
    try:
        context = ray.get_runtime_context()
        return context.gcs_address, context.get_node_id(), context.get_job_id()
    except Exception:                   # a connection that does not say (Ray Client): not the same
        return (object(),)


class Kept:
    """Worker actors kept between the runs of this driver, so that a later run on the same
    Ray starts none (starting them costs about 1 s: a worker process, batchaot's imports,
    Numba's first dispatch). Off unless keep_workers(seconds) was called: a kept actor
    holds its CPU, which other Ray work in this cluster then waits for; they go after
    `seconds` without a run, at release_workers(), or with the driver. Only actors that
    were never restarted are kept, so each has its whole restart budget for the next run."""

    PING_S = 10.0

    def __init__(self) -> None:
        self.seconds = 0.0
        self.members: list[tuple] = []      # (actor, ref of its first pid)
        self.session: tuple | None = None
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()

    def take(self, n: int) -> list[tuple]:
        """Up to n kept actors, still in the process they started in."""
        with self.lock:
            if not self.members:
                return []
            if self.session != _session():
                self.members = []           # another Ray: those handles are gone with it
            taken, self.members = self.members[:n], self.members[n:]
        return [m for m in taken if self._unchanged(m)]

    def give(self, members: list[tuple]) -> None:
        """Keep `members` (actors of a finished run) for `seconds`; kill restarted ones."""
        kept = [m for m in members if self._unchanged(m)]
        for actor, _ in kept:
            actor.release.remote()          # the run's runner goes; the process stays
        with self.lock:
            self.session = _session()
            self.members += kept
            if self.timer is not None:
                self.timer.cancel()
            self.timer = threading.Timer(self.seconds, self.release)
            self.timer.daemon = True
            self.timer.start()

    def release(self) -> None:
        """Kill every kept actor (of the Ray this driver is still connected to)."""
        with self.lock:
            members, self.members = self.members, []
            if self.timer is not None:
                self.timer.cancel()
            if not members or self.session != _session():
                return
        for actor, _ in members:
            kill(actor)

    def _unchanged(self, member: tuple) -> bool:
        """The actor answers from the process it started in; killed (for good) if not."""
        actor, first = member
        try:
            same = ray.get(actor.pid.remote(), timeout=self.PING_S) == ray.get(first, timeout=self.PING_S)
        except (RayError, ray.exceptions.GetTimeoutError):
            same = False
        if not same:
            kill(actor)
        return same


KEPT = Kept()


def keep_workers(seconds: float) -> None:
    """Keep Ray worker actors between runs of this process for `seconds` without a run
    (0: stop keeping them, and kill those kept now). For a driver that runs job after job
    on a Ray it started itself (ray.init), such as a notebook or a scheduler's worker."""
    if seconds < 0:
        raise ValueError("keep_workers: seconds must be >= 0")
    KEPT.seconds = float(seconds)
    if not seconds:
        KEPT.release()


def release_workers() -> None:
    """Kill the worker actors kept between runs now (their CPUs are free again)."""
    KEPT.release()


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


def compile_chunks(file_chunks: list[list[str]], schema, address: str | None,
                   workers: int | None):
    """Compile chunks of rules files as Ray tasks; rows come back in file order."""
    import pyarrow as pa

    from ..compiler.cache import cache_root
    cluster = Cluster(address, workers)
    release_workers()                   # the compile tasks need the CPUs kept actors hold
    try:
        schema_bytes = schema.serialize().to_pybytes()
        env = worker_env()
        refs = [compile_chunk.remote(env, chunk, schema_bytes, cache_root()) for chunk in file_chunks]
        return pa.concat_tables(ray.get(refs))
    finally:
        cluster.close()
