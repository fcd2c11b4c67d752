"""The fused JIT tier: generated Numba kernels that check a whole rule set at once.

Two kinds of kernel, both generated as Python source from the optimized bytecode:

* Per-row kernel (:func:`generate`), for a set of up to a few hundred instructions:
  one loop over the rows evaluates every rule of the set. Each register is a pair of
  locals (an int64 word; a bool validity only where it can be NULL), each instruction
  one or a few statements, and every column the set reads is loaded once per row and
  shared by all rules (one trip through memory). Columns are read in their own width
  (int32, date32, uint16 dictionary codes: columns.LAYOUTS) and widened in registers;
  a string column that is its own dictionary is no argument at all, its lookup
  tables are indexed by row number; validity comes one 64-row word per column at a
  time.
* Shape kernels (:func:`generate_shape`), for large sets: rules whose bytecode has the
  same shape (same opcodes and registers; columns, constants and lookup tables apart)
  share one kernel that takes each rule's wiring as data and runs block by block:
  for each block of SHAPE_BLOCK rows, every rule of the group in turn, its verdicts
  written as flags without a branch and turned into row numbers afterwards, its
  validity read from bytes unpacked once per block. A thousand rules generated from
  a template compile as one kernel.

Both count violations, NULL verdicts and overflow NULLs per rule, as ``vm.run`` does per
program. Per-row kernels (and the VM) set a bit per violating row in the rule's bitmap
(a word per 64 rows, accumulated in a register); shape kernels collect violating row
numbers as (rule, row) pairs and stop early (to be called again) when the pair buffer
is full.

Scalar semantics are vm.py's: its @njit helpers are called, never restated. Float
registers travel as their IEEE bits in int64 locals, as in the VM. Constants are not
in the source: kernels read the set's constant table, so ``x < 3`` and ``x < 4`` share
a kernel; strictness is data too. No user text (rule names, columns, literals) enters
the source.

The modules, in the order a rule set meets them:

- ruleset.py   RuleSet: the programs of one kernel, columns / lookup tables / constants merged
- emitter.py   per-row statements for one program (registers, jumps, NULLs, overflow taint)
- codegen.py   the two kernel sources: generate (per-row), generate_shape (shape kernels)
- helpers.py   the @njit runtime the generated kernels import
- cache.py     kernels by key: memory, then disk, then compile
- loader.py    the disk cache: source files, numba's cache files verified by a manifest
- plan.py      Plan (per-row or shape kernels for a set), its tunables, Bound (kernels
               bound to a batch), Scratch
"""
from .cache import Kernel, forget, get_kernel, get_shape_kernel, kernel_key, program_shape, shape_key
from .codegen import GENERATOR_VERSION, SHAPE_BLOCK, generate, generate_shape
from .loader import STATS, cache_dir
from .plan import Bound, Outcome, Plan, Scratch, group_pairs, kernel_args
from .ruleset import RuleSet

__all__ = ["Bound", "GENERATOR_VERSION", "Kernel", "Outcome", "Plan", "RuleSet", "SHAPE_BLOCK", "STATS",
           "Scratch", "cache_dir", "forget", "generate", "generate_shape", "get_kernel", "get_shape_kernel",
           "group_pairs", "kernel_args", "kernel_key", "program_shape", "shape_key"]
