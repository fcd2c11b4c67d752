"""Key columns: a comparable form, a 64-bit row hash over Arrow buffers, hash tables.

`unique` and `reference` both compare key tuples. They never trust a hash for equality:
the hash only narrows the search (partitioning, candidate duplicates, set probes) and
every answer is confirmed on the real key values. Equality follows DuckDB: -0.0 = 0.0
and NaN = NaN for floats; integers compare by value whatever their width.

`comparable()` turns a key column into the form in which Arrow's own equality, group-by
and joins give exactly those semantics (floats become the int64 bits of a normalized
double), and hashing works on that same form, so equal keys always hash equally.

A key of one fixed-width column needs no confirming at all: its comparable form is one
int64 per row, and the exact kernels below (exact_column, exact_partition,
exact_duplicates) compare those values themselves.

The modules: hashing.py (comparable form, row hashes, the test hook force_hash),
tables.py (hash tables, partitioning, dense integer sets), exact.py (exact
single-column keys: the map side), counting.py (their exact duplicates: the finish
side), arrays.py (large scratch arrays). Threads come from engine/parallel.py.
"""
from .arrays import empty, full, shared_range, shared_zeros, zeros
from .counting import canonical_values, emit_piece, exact_duplicates
from .exact import (ExactColumn, ExactParts, canon, count_part, exact_column, exact_partition, hash1, raw_array,
                    raw_values, valid_at)
from .hashing import comparable, force_hash, forced, hash_rows, is_key_type, mix, valid_rows
from .tables import (DENSE_MAX_SPAN, DenseSet, HashIndex, bucket_bits, capacity, duplicate_hashes, equal_rows,
                     group_keys, partition, table_size)

__all__ = ["DENSE_MAX_SPAN", "DenseSet", "ExactColumn", "ExactParts", "HashIndex", "bucket_bits", "canon",
           "canonical_values", "capacity", "comparable", "count_part", "duplicate_hashes", "emit_piece", "empty",
           "equal_rows", "exact_column", "exact_duplicates", "exact_partition", "force_hash", "forced", "full",
           "group_keys", "hash1", "hash_rows", "is_key_type", "mix", "partition", "raw_array", "raw_values",
           "shared_range", "shared_zeros", "table_size", "valid_at", "valid_rows", "zeros"]
