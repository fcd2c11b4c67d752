"""The Ray worker actor: what runs in a worker process.

Kept apart from the driver's side (actors.py) so that a worker process imports nothing
heavy before its constructor runs: the actor's environment (one Numba thread, the
driver's Numba cache folder) must be in place before Numba is first imported, and it is
set by the constructor, not by a per-actor Ray runtime environment, so that actors start
in the worker processes Ray has already started (a runtime environment of their own
would make Ray start new processes: 0.94 s for two actors here, 0.32 s without). For the
same reason what the runner is built from comes pickled, opened only once the
environment is set.
"""
from __future__ import annotations

import os
import pickle
import time

import ray

MAX_RESTARTS = 4              # a killed worker comes back this often ...
MAX_TASK_RETRIES = 4          # ... and its unit is redone (calls are at-least-once)
HOOK_ENV = "BATCHAOT_TEST_HOOK"


def worker_env() -> dict:
    """Each worker gets one CPU from Ray and must not spawn threads beyond it."""
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    if os.environ.get("NUMBA_CACHE_DIR"):
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    return env


def runner_config(program_blobs: list[bytes], checks: list, output: str | None, csv: dict | None,
                  layout, engine: str, hook: str | None, split_to) -> bytes:
    """What a run's UnitRunner is built from, pickled: put in the object store once per run
    and passed (by reference) with every call."""
    return pickle.dumps((program_blobs, checks, output, csv, layout, engine, hook, split_to))


@ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
class Worker:
    """A worker process's UnitRunner, for whichever run calls it.

    Every call carries its run's configuration as ``[ref]`` (a list, so that Ray passes the
    reference, not the value): the runner is built when a run's first call arrives, and
    again by an actor that Ray restarted (whose constructor has only the environment), from
    the same reference, which the driver holds until its run ends. So an actor serves
    several runs in turn (actors.py keeps them between runs when asked to)."""

    def __init__(self, env: dict):
        os.environ.update(env)          # before anything below imports Numba
        from ..io.memory import use_process_pool
        from ..io.sinks import ignore_file_size_signal
        from ..runtime import unit

        ignore_file_size_signal()       # a part past `ulimit -f` is an error, not a dead worker
        use_process_pool()              # a worker process is batchaot's own (io/memory.py)
        self._unit = unit
        self._config = None             # the reference the runner was built from
        self.runner, self.output = None, None
        self._shared: list = []
        self._hook = TestHook(None)

    def _use(self, config: list) -> None:
        ref = config[0]
        if ref == self._config:
            return
        self.release()
        blobs, checks, output, csv, layout, engine, hook, split_to = pickle.loads(ray.get(ref))
        self.output = output
        self.runner = self._unit.UnitRunner(blobs, output, csv, checks=checks, layout=layout, engine=engine,
                                            split_to=split_to)
        self._shared = [None] * len(self.runner.checks)
        self._hook = TestHook(hook)
        self._config = ref

    def release(self) -> None:
        """Drop the run's runner (its threads, buffers and memory pool's blocks) and the
        run's references (its configuration, shared states), which pin objects in the
        store while this actor holds them."""
        if self.runner is not None:
            self.runner.close()
        self.runner, self._config, self._shared = None, None, []

    def run(self, config: list, unit, shared: list):
        """The unit's result, then one object per bucket of its bucketed checks."""
        self._use(config)
        self._hook.enter("run", unit.id)
        self._take_shared(shared)
        result, buckets = self.runner.run_split(unit)
        self._hook.leave("run")
        return (result, *buckets) if buckets else result

    def _take_shared(self, shared: list) -> None:
        """Shared states (a reference check's key set, built once by the driver) come as
        references with each unit and are fetched once per run by each actor: a restarted
        actor fetches them again, and a constructor never holds object-store references."""
        for i, ref in enumerate(shared):
            if ref is not None and self._shared[i] != ref:
                self.runner.checks[i].use_shared_state(ray.get(ref))
                self._shared[i] = ref

    def run_side(self, config: list, check_index: int, unit):
        """A unit of a check's side input (a referenced dataset): its head, then its buckets."""
        self._use(config)
        head, buckets = self.runner.run_side(check_index, unit)
        return (head, *buckets)

    def reduce(self, config: list, check_index: int, bucket: int, *piece_lists: list):
        from ..runtime.settle import reduce_bucket

        self._use(config)
        self._hook.enter("reduce", f"{check_index}-{bucket}")
        result = reduce_bucket(self.runner.checks[check_index], check_index, bucket,
                               list(piece_lists), self.output, self.runner.layout)
        self._hook.leave("reduce")
        return result

    def quarantine(self, config: list, unit):
        """The unit's rows split into valid/ and invalid/ parts (after the checks settled)."""
        self._use(config)
        self._hook.enter("quarantine", unit.id)
        result = self.runner.quarantine(unit)
        self._hook.leave("quarantine")
        return result

    def pid(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=1)
def compile_chunk(env: dict, files: list[str], schema_bytes: bytes, cache_root: str):
    """A compile job's chunk of rules files, as a task: the environment first, as for an
    actor (Ray may later give this process to one)."""
    os.environ.update(env)
    import pyarrow as pa

    from .compile_job import compile_files
    return compile_files(files, pa.ipc.read_schema(pa.py_buffer(schema_bytes)), cache_root)



class TestHook:
    """Fault injection for tests; off unless the driver's environment has
    ``BATCHAOT_TEST_HOOK=<folder>[:crash=<method>][:hold=<method>]`` (it comes with the run's
    configuration, so a restarted actor has it too). Every call of ``run`` / ``reduce`` /
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


