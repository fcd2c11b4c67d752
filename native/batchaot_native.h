/*
 * batchaot_native.h -- the public C API of batchaot's native module, and the ONLY
 * header cffi sees: native/build.py feeds this text (minus preprocessor lines) to
 * ffibuilder.cdef(), so everything below must stay plain declarations that cffi's
 * parser understands (no macros in declarations, enum values as literals).
 * cffi checks every enum value against the C compiler at build time, so Python
 * never retypes a number.
 *
 * The instruction set itself (the opcode enum and the table of every opcode's
 * operand kinds, family, classes, symbol and flags) lives in bytecode.h, generated
 * from opcodes.def; the enums its columns use (ba_kind, ba_opflag) are here, so
 * that Python reads their values from C.
 */
#ifndef BATCHAOT_NATIVE_H
#define BATCHAOT_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* One instruction; the layout is drawn in bytecode.h. */
typedef struct { int32_t op, a, b, c; } ba_insn;

/* Operand kinds, one per letter of opcodes.def (BA_KIND_NONE is "_"). */
enum ba_kind {
    BA_KIND_NONE = 0, /* _ unused, must be 0 */
    BA_KIND_R = 1,    /* register */
    BA_KIND_K = 2,    /* constant-pool index */
    BA_KIND_C = 3,    /* input column index */
    BA_KIND_J = 4,    /* jump target, strictly forward */
    BA_KIND_L = 5,    /* lookup-table index */
    BA_KIND_N = 6     /* immediate integer */
};

/*
 * Opcode flags: the FLAGS column of opcodes.def (written F(JUMP) | F(FOLDABLE)),
 * a bit set per opcode (ba_op_flags). What each promises, for every row:
 */
enum ba_opflag {
    BA_OPF_JUMP = 1,                /* B is a jump target (kind J) */
    BA_OPF_TERMINATOR = 2,          /* never falls through to the next instruction */
    BA_OPF_READS_A = 4,             /* register A is an input (SELECT keeps its rows) */
    BA_OPF_COMPARISON = 8,          /* R[A] := R[B] <op> R[C], a boolean */
    BA_OPF_NULL_PROPAGATING = 16,   /* the result is NULL iff an input is NULL */
    BA_OPF_OVERFLOW = 32,           /* NULL where an input is NULL, and also where an
                                       integer result does not fit its type */
    BA_OPF_DIVZERO = 64,            /* NULL where an input is NULL, and also where the
                                       divisor R[C] is 0 */
    BA_OPF_NEVER_NULL = 128,        /* the result is never NULL */
    BA_OPF_FOLDABLE = 256           /* writes R[A] from its register inputs (and its
                                       immediate) alone: the optimizer may evaluate it */
};

/* Integer types of NARROW_I's immediate: the range a value must fit, else NULL. */
enum ba_int {
    BA_INT_I64 = 0,   /* every int64: no check */
    BA_INT_I8 = 1,
    BA_INT_I16 = 2,
    BA_INT_I32 = 3,
    BA_INT_U8 = 4,
    BA_INT_U16 = 5,
    BA_INT_U32 = 6,
    BA_INT_U64 = 7    /* 0 <= x: an int64 register never exceeds 2^63 - 1 */
};

/* Error codes: 0 is success, every error is negative (see ba_strerror). */
enum ba_error {
    BA_OK = 0,
    BA_ERR_BAD_ARGUMENT = -1,
    BA_ERR_BAD_OPCODE = -2,
    BA_ERR_BAD_REGISTER = -3,
    BA_ERR_BAD_CONSTANT = -4,
    BA_ERR_BAD_COLUMN = -5,
    BA_ERR_BAD_LUT = -6,
    BA_ERR_BAD_JUMP = -7,
    BA_ERR_MISSING_RET = -8,
    BA_ERR_NONZERO_UNUSED = -9,
    BA_ERR_CONST_POOL_FULL = -10,
    BA_ERR_NO_MEMORY = -11,
    BA_ERR_FOREIGN_POINTER = -12,
    BA_ERR_DOUBLE_FREE = -13
};

/* What the optimizer proved about the RET register (ba_opt_stats.verdict). */
enum ba_verdict {
    BA_VERDICT_UNKNOWN = -1,
    BA_VERDICT_FALSE = 0,
    BA_VERDICT_TRUE = 1,
    BA_VERDICT_NULL = 2
};

enum ba_limits {
    BA_NPASSES = 7,     /* number of optimizer passes (see ba_pass_name) */
    BA_MAX_ROUNDS = 64  /* the pass sequence repeats at most this often */
};

/*
 * A program and its constant pool. The optimizer rewrites code in place (ncode
 * shrinks) and may append constants up to kcap (nconst grows). Constants are
 * untyped 64-bit words (the bits of a float64 for *_F users) with a valid flag
 * (kvalid[i] != 0); a NULL constant's word is meaningless.
 */
typedef struct {
    ba_insn *code;
    int32_t ncode;
    int64_t *kval;
    uint8_t *kvalid;
    int32_t nconst;
    int32_t kcap;
    int32_t nregs, ncols, nluts;
} ba_program;

typedef struct {
    int32_t before, after;           /* instruction counts */
    int32_t removed[BA_NPASSES];     /* instructions removed by each pass */
    int32_t rounds;                  /* rounds of the pass sequence that ran */
    int32_t verdict;                 /* enum ba_verdict */
} ba_opt_stats;

/* 0 or a negative error code; never reads outside the arrays it is given. */
int ba_validate(const ba_program *p);
/* Same; *pc (if not NULL) gets the offending instruction index, or -1. */
int ba_validate_at(const ba_program *p, int32_t *pc);
/* Validates, then runs the passes selected by pass_mask (bit i = pass i) in
 * their fixed order until a round changes nothing. st may be NULL. */
int ba_optimize(ba_program *p, uint32_t pass_mask, ba_opt_stats *st);
const char *ba_strerror(int code);

/* The opcode table (from opcodes.def). Out-of-range arguments give NULL / -1. */
int ba_op_count(void);
const char *ba_op_name(int op);
const char *ba_op_doc(int op);
int ba_op_kind(int op, int operand);   /* operand 0=A, 1=B, 2=C; enum ba_kind */
const char *ba_op_family(int op);      /* "add", "lt", "jallf", ...: opcodes that differ
                                          only in their operands' class share one */
const char *ba_op_classes(int op);     /* physical classes of A, B, C: "iii", "bff", ... */
const char *ba_op_symbol(int op);      /* "+", "<", ... or "" */
int ba_op_flags(int op);               /* enum ba_opflag bits */
int ba_pass_count(void);
const char *ba_pass_name(int i);

/*
 * A memory pool owned by one thread (no locking, no globals; pools coexist).
 * Fixed-size aligned blocks carved from one slab, handed out from a free list.
 * A request larger than a block, or one made while all blocks are taken, gets a
 * fresh aligned allocation instead (a "miss"), which ba_pool_free releases.
 */
typedef struct ba_pool ba_pool;

typedef struct {
    uint64_t allocs, hits, misses, frees;
    uint64_t in_use, high_water;        /* outstanding allocations (blocks + misses) */
    uint64_t block_bytes, nblocks;
} ba_pool_stats;

/* align: a power of two (0 means 64). NULL on bad arguments or no memory. */
ba_pool *ba_pool_new(size_t block_bytes, size_t nblocks, size_t align);
void *ba_pool_alloc(ba_pool *p, size_t nbytes);
/* All or nothing: on failure nothing stays allocated and the stats are unchanged. */
int ba_pool_alloc_batch(ba_pool *p, size_t nbytes, void **out, size_t n);
/* BA_ERR_FOREIGN_POINTER for a pointer this pool did not hand out (a miss
 * allocation freed twice also reads as foreign), BA_ERR_DOUBLE_FREE for a block
 * already free. Never crashes. */
int ba_pool_free(ba_pool *p, void *ptr);
/* Frees every pointer it can; returns the first error, or 0. */
int ba_pool_free_batch(ba_pool *p, void **ptrs, size_t n);
/* Every block back to the free list, misses released; counters are kept. */
void ba_pool_reset(ba_pool *p);
/* Frees everything and sets *pp = NULL; safe on NULL and twice. */
void ba_pool_destroy(ba_pool **pp);
void ba_pool_get_stats(const ba_pool *p, ba_pool_stats *out);

#endif /* BATCHAOT_NATIVE_H */
