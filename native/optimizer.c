/*
 * optimizer.c -- validation and the peephole optimizer for batchaot bytecode.
 *
 * The passes run in a fixed order (PASSES below), and the whole sequence repeats
 * until a round changes nothing. Every pass keeps the program valid, so it can
 * stop after any pass. Jumps only go forward, which keeps every analysis to one
 * linear sweep: forward for constants, copies and reachability, backward for
 * liveness.
 *
 * batchaot/compiler/twin.py is the same algorithm in plain Python; the two
 * must agree byte for byte, so a change here is a change there.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bytecode.h"

/* ------------------------------------------------------------- opcode classes */

/* Everything the passes know about an opcode in general comes from its row of
 * opcodes.def (kinds and flags); only the semantics of single opcodes (what to
 * fold them to) are written out below. */
static bool has(int32_t op, unsigned flag) { return (ba_optable[op].flags & flag) != 0; }
static bool is_jump(int32_t op) { return has(op, BA_OPF_JUMP); }
static bool is_cond_jump(int32_t op) { return is_jump(op) && !has(op, BA_OPF_TERMINATOR); }
static bool ends_block(int32_t op) { return has(op, BA_OPF_TERMINATOR); }
static bool is_binary(int32_t op) { return ba_optable[op].kind[2] == BA_KIND_R; }

/* Register A is an input of SELECT (unchanged rows), conditional jumps and RET. */
static bool reads_a(int32_t op) { return has(op, BA_OPF_READS_A); }

/* Opcodes that write register A and have no other effect: every opcode whose A is
 * a register, except jumps and terminators (they only test or return it). */
static bool writes_a(int32_t op)
{
    return ba_optable[op].kind[0] == BA_KIND_R && !has(op, BA_OPF_JUMP | BA_OPF_TERMINATOR);
}

/* Opcodes whose result is a function of their register inputs alone. LOAD and
 * LUT read data the optimizer does not have, SELECT keeps rows of the old A:
 * those are not FOLDABLE. */
static bool is_foldable(int32_t op) { return has(op, BA_OPF_FOLDABLE); }

/* A NULL input makes a NULL result. */
static bool is_strict(int32_t op)
{
    return has(op, BA_OPF_NULL_PROPAGATING | BA_OPF_OVERFLOW | BA_OPF_DIVZERO);
}

/* ----------------------------------------------------------------- validation */

static int check_arguments(const ba_program *p)
{
    if (!p || !p->code || p->ncode <= 0)
        return BA_ERR_BAD_ARGUMENT;
    if (p->nconst < 0 || p->kcap < p->nconst || p->nregs < 0 || p->ncols < 0
        || p->nluts < 0)
        return BA_ERR_BAD_ARGUMENT;
    if (p->kcap > 0 && (!p->kval || !p->kvalid))
        return BA_ERR_BAD_ARGUMENT;
    return BA_OK;
}

static int check_operand(const ba_program *p, int32_t pc, int kind, int32_t x)
{
    switch (kind) {
    case BA_KIND_R: return x >= 0 && x < p->nregs ? BA_OK : BA_ERR_BAD_REGISTER;
    case BA_KIND_K: return x >= 0 && x < p->nconst ? BA_OK : BA_ERR_BAD_CONSTANT;
    case BA_KIND_C: return x >= 0 && x < p->ncols ? BA_OK : BA_ERR_BAD_COLUMN;
    case BA_KIND_L: return x >= 0 && x < p->nluts ? BA_OK : BA_ERR_BAD_LUT;
    case BA_KIND_J: return x > pc && x < p->ncode ? BA_OK : BA_ERR_BAD_JUMP;
    case BA_KIND_N: return BA_OK;
    default: return x == 0 ? BA_OK : BA_ERR_NONZERO_UNUSED;
    }
}

static int check_insn(const ba_program *p, int32_t pc)
{
    const ba_insn *in = &p->code[pc];
    if (in->op < 0 || in->op >= BA_OP_COUNT)
        return BA_ERR_BAD_OPCODE;
    const int32_t operand[3] = {in->a, in->b, in->c};
    for (int i = 0; i < 3; i++) {
        int rc = check_operand(p, pc, ba_optable[in->op].kind[i], operand[i]);
        if (rc != BA_OK)
            return rc;
    }
    return BA_OK;
}

int ba_validate_at(const ba_program *p, int32_t *where)
{
    int32_t pc = -1;
    int rc = check_arguments(p);
    for (int32_t i = 0; rc == BA_OK && i < p->ncode; i++) {
        rc = check_insn(p, i);
        pc = i;
    }
    if (rc == BA_OK && p->code[pc].op != BA_OP_RET)
        rc = BA_ERR_MISSING_RET;
    if (where)
        *where = rc == BA_OK ? -1 : pc;
    return rc;
}

int ba_validate(const ba_program *p) { return ba_validate_at(p, NULL); }

const char *ba_strerror(int code)
{
    switch (code) {
    case BA_OK: return "ok";
    case BA_ERR_BAD_ARGUMENT: return "bad argument";
    case BA_ERR_BAD_OPCODE: return "bad opcode";
    case BA_ERR_BAD_REGISTER: return "register index out of range";
    case BA_ERR_BAD_CONSTANT: return "constant index out of range";
    case BA_ERR_BAD_COLUMN: return "column index out of range";
    case BA_ERR_BAD_LUT: return "lookup-table index out of range";
    case BA_ERR_BAD_JUMP: return "jump target not strictly forward inside the program";
    case BA_ERR_MISSING_RET: return "last instruction is not RET";
    case BA_ERR_NONZERO_UNUSED: return "unused operand is not 0";
    case BA_ERR_CONST_POOL_FULL: return "constant pool full";
    case BA_ERR_NO_MEMORY: return "out of memory";
    case BA_ERR_FOREIGN_POINTER: return "pointer not owned by this pool (or already freed)";
    case BA_ERR_DOUBLE_FREE: return "pool block freed twice";
    default: return "unknown error";
    }
}

/* ------------------------------------------------------------ scalar values */

/* One row of a register: a 64-bit word and a valid flag. A NULL's word is 0, so
 * two NULLs compare equal and share one constant. */
typedef struct { bool valid; int64_t bits; } value;

static const value NULL_VALUE = {false, 0};
/* Every NaN result is this one: NaN payloads and signs are not observable in
 * SQL, and a fixed pattern keeps C and the Python twin byte-identical. */
static const uint64_t CANONICAL_NAN = 0x7ff8000000000000u;

static value of_int(uint64_t u)   /* the word with these bits, without UB */
{
    value v = {true, 0};
    memcpy(&v.bits, &u, sizeof u);
    return v;
}

static value of_bool(bool b) { return of_int(b ? 1u : 0u); }

static value of_float(double d)
{
    value v = {true, 0};
    if (isnan(d))
        return of_int(CANONICAL_NAN);
    memcpy(&v.bits, &d, sizeof d);
    return v;
}

static double as_float(int64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static bool is_true(value v) { return v.valid && v.bits != 0; }
static bool is_false(value v) { return v.valid && v.bits == 0; }

/* DuckDB's order: NaN equals NaN and sorts above every number; -0 equals 0. */
static int compare_float(double x, double y)
{
    if (isnan(x) || isnan(y))
        return (int)(bool)isnan(x) - (int)(bool)isnan(y);
    return (x > y) - (x < y);
}

static int compare_int(int64_t x, int64_t y) { return (x > y) - (x < y); }

/* ROUND_I: x to a multiple of 10^-digits, half away from zero. Where that
 * multiple (or 10^-digits) leaves int64, opcodes.def's general rule makes the row
 * NULL, but ROUND_I's own row does not say so: those cases are not folded (false),
 * the VM decides. */
static bool round_int(int64_t x, int32_t digits, value *out)
{
    if (digits >= 0) {
        *out = of_int((uint64_t)x);
        return true;
    }
    if (digits < -18)
        return false;
    int64_t m = 1;
    for (int32_t i = 0; i < -digits; i++)
        m *= 10;
    int64_t q = x / m, r = x % m;
    if (2 * (r < 0 ? -r : r) >= m)
        q += x < 0 ? -1 : 1;
    if (q > INT64_MAX / m || q < INT64_MIN / m)
        return false;
    *out = of_int((uint64_t)(q * m));
    return true;
}

/* e with a * b == p + e exactly, for p = fl(a * b): Dekker's TwoProduct (no FMA, so
 * the Python twin and the Numba VM compute the very same bits). */
static double product_error(double a, double b, double p)
{
    const double split = 134217729.0; /* 2^27 + 1 */
    double t = split * a, ah = t - (t - a), al = a - ah;
    t = split * b;
    double bh = t - (t - b), bl = b - bh;
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

/* ROUND_F as DuckDB: the exact binary value of x rounded half away from zero to
 * `digits` decimals. A tie in fl(x * 10^d) is settled by the product's exact error. */
static double round_float(double x, int32_t digits)
{
    if (digits >= 0) {
        double m = pow(10.0, (double)digits);
        double y = x * m;
        if (!isfinite(y))
            return x;
        double a = fabs(y), t = floor(a), frac = a - t;
        if (frac > 0.5 || (frac == 0.5 && product_error(x, m, y) * (y > 0 ? 1.0 : -1.0) >= 0.0))
            t += 1.0;
        return copysign(t, y) / m;
    }
    double m = pow(10.0, (double)-digits);
    if (!isfinite(x))
        return x;
    double a = fabs(x), rem = fmod(a, m), t = a - rem;   /* fmod is exact */
    if (2.0 * rem >= m)
        t += m;
    return copysign(t, x);
}

/* F2I: nearest integer, ties to even; NULL for NaN and outside int64. */
static value float_to_int(double x)
{
    if (isnan(x))
        return NULL_VALUE;
    double r = nearbyint(x);
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
        return NULL_VALUE;
    return of_int((uint64_t)(int64_t)r);
}

/* Integer arithmetic that leaves int64 is NULL (DuckDB's TRY), never a wrapped
 * value: the compiler builtins compute the exact result's low bits and say
 * whether it fits, without UB. */
static value add_int(int64_t x, int64_t y)
{
    int64_t r;
    return __builtin_add_overflow(x, y, &r) ? NULL_VALUE : of_int((uint64_t)r);
}

static value sub_int(int64_t x, int64_t y)
{
    int64_t r;
    return __builtin_sub_overflow(x, y, &r) ? NULL_VALUE : of_int((uint64_t)r);
}

static value mul_int(int64_t x, int64_t y)
{
    int64_t r;
    return __builtin_mul_overflow(x, y, &r) ? NULL_VALUE : of_int((uint64_t)r);
}

/* NARROW_I: x where it fits the integer type `type` (enum ba_int), else NULL.
 * False for a type the enum does not name: opcodes.def leaves it undefined. */
static bool narrow_int(int64_t x, int32_t type, value *out)
{
    int64_t lo, hi;
    switch (type) {
    case BA_INT_I64: lo = INT64_MIN; hi = INT64_MAX; break;
    case BA_INT_I8: lo = INT8_MIN; hi = INT8_MAX; break;
    case BA_INT_I16: lo = INT16_MIN; hi = INT16_MAX; break;
    case BA_INT_I32: lo = INT32_MIN; hi = INT32_MAX; break;
    case BA_INT_U8: lo = 0; hi = UINT8_MAX; break;
    case BA_INT_U16: lo = 0; hi = UINT16_MAX; break;
    case BA_INT_U32: lo = 0; hi = UINT32_MAX; break;
    case BA_INT_U64: lo = 0; hi = INT64_MAX; break;
    default: return false;
    }
    *out = x >= lo && x <= hi ? of_int((uint64_t)x) : NULL_VALUE;
    return true;
}

/* A strict opcode (is_strict) on valid inputs x, y (imm: operand C). */
static bool evaluate_valid(int32_t op, int64_t x, int64_t y, int32_t imm, value *out)
{
    const double fx = as_float(x), fy = as_float(y);
    switch (op) {
    case BA_OP_MOV: *out = of_int((uint64_t)x); return true;
    case BA_OP_ADD_I: *out = add_int(x, y); return true;
    case BA_OP_SUB_I: *out = sub_int(x, y); return true;
    case BA_OP_MUL_I: *out = mul_int(x, y); return true;
    case BA_OP_IDIV_I:   /* INT64_MIN / -1 overflows */
        *out = y == 0 || (x == INT64_MIN && y == -1) ? NULL_VALUE : of_int((uint64_t)(x / y));
        return true;
    case BA_OP_MOD_I:    /* INT64_MIN % -1 is 0, but computing it traps */
        *out = y == 0 ? NULL_VALUE : y == -1 ? of_int(0u) : of_int((uint64_t)(x % y));
        return true;
    case BA_OP_NEG_I: *out = x == INT64_MIN ? NULL_VALUE : of_int((uint64_t)-x); return true;
    case BA_OP_ABS_I:
        *out = x == INT64_MIN ? NULL_VALUE : of_int((uint64_t)(x < 0 ? -x : x));
        return true;
    case BA_OP_NARROW_I: return narrow_int(x, imm, out);
    case BA_OP_ROUND_I: return round_int(x, imm, out);
    case BA_OP_ADD_F: *out = of_float(fx + fy); return true;
    case BA_OP_SUB_F: *out = of_float(fx - fy); return true;
    case BA_OP_MUL_F: *out = of_float(fx * fy); return true;
    case BA_OP_DIV_F: *out = of_float(fx / fy); return true;
    case BA_OP_MOD_F: *out = of_float(fmod(fx, fy)); return true;
    case BA_OP_NEG_F: *out = of_float(-fx); return true;
    case BA_OP_ABS_F: *out = of_float(fabs(fx)); return true;
    case BA_OP_ROUND_F: *out = of_float(round_float(fx, imm)); return true;
    case BA_OP_I2F: *out = of_float((double)x); return true;
    case BA_OP_F2S: *out = of_float((double)(float)fx); return true;
    case BA_OP_F2I: *out = float_to_int(fx); return true;
    case BA_OP_EQ_I: *out = of_bool(compare_int(x, y) == 0); return true;
    case BA_OP_NE_I: *out = of_bool(compare_int(x, y) != 0); return true;
    case BA_OP_LT_I: *out = of_bool(compare_int(x, y) < 0); return true;
    case BA_OP_LE_I: *out = of_bool(compare_int(x, y) <= 0); return true;
    case BA_OP_GT_I: *out = of_bool(compare_int(x, y) > 0); return true;
    case BA_OP_GE_I: *out = of_bool(compare_int(x, y) >= 0); return true;
    case BA_OP_EQ_F: *out = of_bool(compare_float(fx, fy) == 0); return true;
    case BA_OP_NE_F: *out = of_bool(compare_float(fx, fy) != 0); return true;
    case BA_OP_LT_F: *out = of_bool(compare_float(fx, fy) < 0); return true;
    case BA_OP_LE_F: *out = of_bool(compare_float(fx, fy) <= 0); return true;
    case BA_OP_GT_F: *out = of_bool(compare_float(fx, fy) > 0); return true;
    case BA_OP_GE_F: *out = of_bool(compare_float(fx, fy) >= 0); return true;
    case BA_OP_NOT: *out = of_bool(x == 0); return true;
    default: return false;
    }
}

/* A foldable opcode on constant inputs b, c (c is NULL_VALUE for unary ops).
 * False when opcodes.def leaves the result undefined: then it is not folded. */
static bool evaluate(int32_t op, value b, value c, int32_t imm, value *out)
{
    if (is_strict(op)) {
        if (!b.valid || (is_binary(op) && !c.valid)) {
            *out = NULL_VALUE;
            return true;
        }
        return evaluate_valid(op, b.bits, c.bits, imm, out);
    }
    switch (op) {   /* the opcodes that do not simply propagate NULL */
    case BA_OP_AND:
        *out = is_false(b) || is_false(c) ? of_bool(false)
             : b.valid && c.valid ? of_bool(true) : NULL_VALUE;
        return true;
    case BA_OP_OR:
        *out = is_true(b) || is_true(c) ? of_bool(true)
             : b.valid && c.valid ? of_bool(false) : NULL_VALUE;
        return true;
    case BA_OP_ISNULL: *out = of_bool(!b.valid); return true;
    case BA_OP_NOTNULL: *out = of_bool(b.valid); return true;
    case BA_OP_COALESCE: *out = b.valid ? b : c; return true;
    default: return false;
    }
}

/* ------------------------------------------------------------ constant pool */

static value constant(const ba_program *p, int32_t k)
{
    value v = {p->kvalid[k] != 0, 0};
    if (v.valid)
        v.bits = p->kval[k];
    return v;
}

/* Index of a constant equal to v, appended if new; -1 when the pool is full. */
static int32_t intern_constant(ba_program *p, value v)
{
    for (int32_t k = 0; k < p->nconst; k++)
        if ((p->kvalid[k] != 0) == v.valid && (!v.valid || p->kval[k] == v.bits))
            return k;
    if (p->nconst >= p->kcap)
        return -1;
    p->kval[p->nconst] = v.bits;
    p->kvalid[p->nconst] = v.valid;
    return p->nconst++;
}

/* ----------------------------------------------------------- program edits */

static void mark_jump_targets(const ba_program *p, uint8_t *target)
{
    memset(target, 0, (size_t)p->ncode);
    for (int32_t pc = 0; pc < p->ncode; pc++)
        if (is_jump(p->code[pc].op))
            target[p->code[pc].b] = 1;
}

/* Deletes the instructions marked dead and remaps jump targets (newpc: scratch
 * for ncode entries). A jump to a deleted instruction lands on the next kept
 * one: passes delete only instructions without effect on the paths that reach
 * them, or unreachable ones, and a reachable RET always stays, so one exists.
 * Returns the number deleted. */
static int delete_marked(ba_program *p, const uint8_t *dead, int32_t *newpc)
{
    int32_t kept = 0;
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        newpc[pc] = kept;       /* = new index of the next kept instruction */
        kept += !dead[pc];
    }
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        if (dead[pc])
            continue;
        ba_insn in = p->code[pc];
        if (is_jump(in.op))
            in.b = newpc[in.b];
        p->code[newpc[pc]] = in;
    }
    int removed = p->ncode - kept;
    p->ncode = kept;
    return removed;
}

/* --------------------------------------------------------- register index */

/* The registers a program mentions, sorted: analyses index their per-register
 * state by position here, so their memory follows the code, not nregs. */
typedef struct { int32_t *reg; int32_t n; } regindex;

static int cmp_int32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static int build_regindex(const ba_program *p, regindex *ri)
{
    ri->n = 0;
    ri->reg = malloc(((size_t)p->ncode * 3 + 1) * sizeof *ri->reg);
    if (!ri->reg)
        return BA_ERR_NO_MEMORY;
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        const ba_insn *in = &p->code[pc];
        const int32_t operand[3] = {in->a, in->b, in->c};
        for (int i = 0; i < 3; i++)
            if (ba_optable[in->op].kind[i] == BA_KIND_R)
                ri->reg[ri->n++] = operand[i];
    }
    qsort(ri->reg, (size_t)ri->n, sizeof *ri->reg, cmp_int32);
    int32_t n = 0;
    for (int32_t i = 0; i < ri->n; i++)
        if (n == 0 || ri->reg[n - 1] != ri->reg[i])
            ri->reg[n++] = ri->reg[i];
    ri->n = n;
    return BA_OK;
}

static int32_t slot_of(const regindex *ri, int32_t r)
{
    const int32_t *at = bsearch(&r, ri->reg, (size_t)ri->n, sizeof r, cmp_int32);
    return (int32_t)(at - ri->reg);   /* every register of the code is there */
}

/* ------------------------------------------------------------------ liveness */

typedef struct {
    regindex regs;
    int32_t nwords;      /* 64-bit words per register set */
    uint64_t *live;      /* the running set */
    uint64_t *at_target; /* live-in of each jump target, indexed by tslot */
    int32_t *tslot;      /* pc -> its set in at_target, or -1 */
} liveness;

static bool has_reg(const liveness *lv, const uint64_t *set, int32_t r)
{
    int32_t s = slot_of(&lv->regs, r);
    return set[s / 64] >> (s % 64) & 1u;
}

static void put_reg(liveness *lv, int32_t r, bool on)
{
    int32_t s = slot_of(&lv->regs, r);
    uint64_t bit = (uint64_t)1 << (s % 64);
    lv->live[s / 64] = on ? lv->live[s / 64] | bit : lv->live[s / 64] & ~bit;
}

static uint64_t *target_set(const liveness *lv, int32_t pc)
{
    return lv->at_target + (size_t)lv->tslot[pc] * (size_t)lv->nwords;
}

static void free_liveness(liveness *lv)
{
    free(lv->regs.reg);
    free(lv->live);
    free(lv->at_target);
    free(lv->tslot);
}

static int init_liveness(const ba_program *p, liveness *lv)
{
    memset(lv, 0, sizeof *lv);
    if (build_regindex(p, &lv->regs) != BA_OK)
        return BA_ERR_NO_MEMORY;
    lv->nwords = lv->regs.n / 64 + 1;
    lv->tslot = malloc((size_t)p->ncode * sizeof *lv->tslot);
    if (!lv->tslot)
        return BA_ERR_NO_MEMORY;
    for (int32_t pc = 0; pc < p->ncode; pc++)
        lv->tslot[pc] = -1;
    int32_t ntargets = 0;
    for (int32_t pc = 0; pc < p->ncode; pc++)
        if (is_jump(p->code[pc].op) && lv->tslot[p->code[pc].b] < 0)
            lv->tslot[p->code[pc].b] = ntargets++;
    lv->live = calloc((size_t)lv->nwords, sizeof *lv->live);
    lv->at_target = calloc((size_t)ntargets * (size_t)lv->nwords + 1, sizeof *lv->at_target);
    return lv->live && lv->at_target ? BA_OK : BA_ERR_NO_MEMORY;
}

/* live := live-out of pc, given live = live-in of pc + 1. */
static void flow_out(liveness *lv, const ba_insn *in)
{
    if (ends_block(in->op))      /* the next instruction is not a successor */
        memset(lv->live, 0, (size_t)lv->nwords * sizeof *lv->live);
    if (is_jump(in->op))
        for (int32_t w = 0; w < lv->nwords; w++)
            lv->live[w] |= target_set(lv, in->b)[w];
}

/* live := live-in of pc, given live = live-out of pc. */
static void flow_in(liveness *lv, const ba_insn *in)
{
    const ba_opinfo *info = &ba_optable[in->op];
    if (writes_a(in->op))
        put_reg(lv, in->a, false);
    if (reads_a(in->op))     /* after: SELECT both writes and reads its A */
        put_reg(lv, in->a, true);
    if (info->kind[1] == BA_KIND_R)
        put_reg(lv, in->b, true);
    if (info->kind[2] == BA_KIND_R)
        put_reg(lv, in->c, true);
}

/* Backward liveness in one sweep: jumps only go forward, so every successor is
 * seen before its predecessors; live-in sets are kept only at jump targets.
 * For each pc with query[pc] >= 0, live_after[pc] tells whether that register
 * is live after pc. With dead != NULL, a writer whose destination is not live
 * is marked dead and treated as absent, so a whole dead chain goes at once. */
static int analyze_liveness(const ba_program *p, const int32_t *query,
                            uint8_t *live_after, uint8_t *dead)
{
    liveness lv;
    int rc = init_liveness(p, &lv);
    for (int32_t pc = p->ncode - 1; rc == BA_OK && pc >= 0; pc--) {
        const ba_insn *in = &p->code[pc];
        flow_out(&lv, in);
        if (query && query[pc] >= 0)
            live_after[pc] = has_reg(&lv, lv.live, query[pc]);
        if (dead && writes_a(in->op) && !has_reg(&lv, lv.live, in->a))
            dead[pc] = 1;
        else
            flow_in(&lv, in);
        if (lv.tslot[pc] >= 0)
            memcpy(target_set(&lv, pc), lv.live, (size_t)lv.nwords * sizeof *lv.live);
    }
    free_liveness(&lv);
    return rc;
}

/* ---------------------------------------------------- constant knowledge */

/* Registers whose value is a known constant on every row. Forgetting everything
 * bumps a generation number instead of clearing, since it happens per block. */
typedef struct {
    regindex regs;
    uint32_t *gen_of;    /* slot -> generation in which it became known */
    value *val;
    uint32_t gen;
} knowledge;

static void forget_all(knowledge *k) { k->gen++; }

static void forget(knowledge *k, int32_t r) { k->gen_of[slot_of(&k->regs, r)] = 0; }

static void know(knowledge *k, int32_t r, value v)
{
    int32_t s = slot_of(&k->regs, r);
    k->gen_of[s] = k->gen;
    k->val[s] = v;
}

static bool lookup(const knowledge *k, int32_t r, value *v)
{
    int32_t s = slot_of(&k->regs, r);
    if (k->gen_of[s] != k->gen)
        return false;
    *v = k->val[s];
    return true;
}

static int init_knowledge(const ba_program *p, knowledge *k)
{
    memset(k, 0, sizeof *k);
    if (build_regindex(p, &k->regs) != BA_OK)
        return BA_ERR_NO_MEMORY;
    k->gen = 1;
    k->gen_of = calloc((size_t)k->regs.n + 1, sizeof *k->gen_of);
    k->val = calloc((size_t)k->regs.n + 1, sizeof *k->val);
    return k->gen_of && k->val ? BA_OK : BA_ERR_NO_MEMORY;
}

static void free_knowledge(knowledge *k)
{
    free(k->regs.reg);
    free(k->gen_of);
    free(k->val);
}

/* What executing `in` teaches about its destination. */
static void learn(const ba_program *p, knowledge *k, const ba_insn *in)
{
    value v;
    if (in->op == BA_OP_LOADK)
        know(k, in->a, constant(p, in->b));
    else if (in->op == BA_OP_MOV && lookup(k, in->b, &v))
        know(k, in->a, v);
    else if (writes_a(in->op))
        forget(k, in->a);
}

/* ------------------------------------------------------------------ folding */

enum fold_result { KEEP, REWRITTEN, DELETE };

static enum fold_result load_constant(ba_program *p, ba_insn *in, value v)
{
    int32_t k = intern_constant(p, v);
    if (k < 0)
        return KEEP;
    *in = (ba_insn){BA_OP_LOADK, in->a, k, 0};
    return REWRITTEN;
}

static enum fold_result move(ba_insn *in, int32_t src)
{
    *in = (ba_insn){BA_OP_MOV, in->a, src, 0};
    return REWRITTEN;
}

/* A conditional jump on a known register is always or never taken. */
static enum fold_result fold_jump(const knowledge *k, ba_insn *in)
{
    value v;
    if (!lookup(k, in->a, &v))
        return KEEP;
    bool taken = in->op == BA_OP_JALLF ? is_false(v)
               : in->op == BA_OP_JALLT ? is_true(v) : !is_true(v);
    if (!taken)
        return DELETE;
    *in = (ba_insn){BA_OP_JMP, 0, in->b, 0};
    return REWRITTEN;
}

static enum fold_result fold_select(const knowledge *k, ba_insn *in)
{
    value cond;
    if (!lookup(k, in->b, &cond))
        return KEEP;
    return is_true(cond) ? move(in, in->c) : DELETE;
}

/* Identities with one known input (b or c, the other is NULL). */
static enum fold_result simplify(ba_program *p, ba_insn *in, const value *b, const value *c)
{
    const value *known = b ? b : c;
    int32_t other = b ? in->c : in->b;
    if (is_strict(in->op))   /* arithmetic and comparisons: a NULL input makes a NULL */
        return known->valid ? KEEP : load_constant(p, in, NULL_VALUE);
    switch (in->op) {
    case BA_OP_AND:
        return is_false(*known) ? load_constant(p, in, of_bool(false))
             : is_true(*known) ? move(in, other) : KEEP;
    case BA_OP_OR:
        return is_true(*known) ? load_constant(p, in, of_bool(true))
             : is_false(*known) ? move(in, other) : KEEP;
    case BA_OP_COALESCE:
        if (!b)
            return KEEP;
        return b->valid ? load_constant(p, in, *b) : move(in, in->c);
    default:
        return KEEP;
    }
}

static enum fold_result fold_insn(ba_program *p, const knowledge *k, ba_insn *in)
{
    if (is_cond_jump(in->op))
        return fold_jump(k, in);
    if (in->op == BA_OP_SELECT)
        return fold_select(k, in);
    if (!is_foldable(in->op))
        return KEEP;
    value b, c = NULL_VALUE, out;
    bool binary = is_binary(in->op);
    bool kb = lookup(k, in->b, &b);
    bool kc = binary && lookup(k, in->c, &c);
    if (kb && (kc || !binary))
        return evaluate(in->op, b, c, in->c, &out) ? load_constant(p, in, out) : KEEP;
    if (kb || kc)
        return simplify(p, in, kb ? &b : NULL, kc ? &c : NULL);
    if (in->op == BA_OP_NARROW_I && in->c == BA_INT_I64)
        return move(in, in->b);    /* every int64 fits */
    return KEEP;
}

/* ------------------------------------------------------------------- passes */

typedef int (*pass_fn)(ba_program *p, bool *changed);

/* Runs a pass as mark(p, dead, changed), which may rewrite instructions in
 * place and flags the ones to delete, then deletes them. A mark function
 * allocates before it edits anything, and deleting cannot fail, so a failed
 * pass leaves a valid program behind. */
static int delete_where(ba_program *p, bool *changed,
                        int (*mark)(ba_program *, uint8_t *, bool *))
{
    uint8_t *dead = calloc((size_t)p->ncode, 1);
    int32_t *newpc = malloc((size_t)p->ncode * sizeof *newpc);
    int rc = dead && newpc ? mark(p, dead, changed) : BA_ERR_NO_MEMORY;
    if (rc == BA_OK)
        rc = delete_marked(p, dead, newpc);
    free(dead);
    free(newpc);
    return rc;
}

static int mark_nops(ba_program *p, uint8_t *dead, bool *changed)
{
    (void)changed;
    for (int32_t pc = 0; pc < p->ncode; pc++)
        dead[pc] = p->code[pc].op == BA_OP_NOP;
    return BA_OK;
}

static int remove_nops(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_nops);
}

/* Within a block (knowledge is forgotten at every jump target and after JMP and
 * RET), registers defined by LOADK are known; ops on known inputs become LOADK. */
static int mark_folds(ba_program *p, uint8_t *dead, bool *changed)
{
    knowledge k;
    uint8_t *target = malloc((size_t)p->ncode);
    int rc = init_knowledge(p, &k);
    if (rc == BA_OK && !target)
        rc = BA_ERR_NO_MEMORY;
    if (rc == BA_OK)
        mark_jump_targets(p, target);
    for (int32_t pc = 0; rc == BA_OK && pc < p->ncode; pc++) {
        ba_insn *in = &p->code[pc];
        if (target[pc])
            forget_all(&k);
        enum fold_result r = fold_insn(p, &k, in);
        *changed |= r != KEEP;
        if (r == DELETE) {
            dead[pc] = 1;
            continue;
        }
        learn(p, &k, in);
        if (ends_block(in->op))
            forget_all(&k);
    }
    free(target);
    free_knowledge(&k);
    return rc;
}

static int fold_constants(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_folds);
}

/* "LOAD+STORE -> MOV fusion" in register-machine terms: a producer writing a
 * temporary t, directly followed by MOV d, t with t dead afterwards, writes d
 * itself (LOAD t, col; MOV d, t  =>  LOAD d, col). The MOV must not be a jump
 * target, or another path would reach it with a different t. */
static void fuse_pairs(ba_program *p, const uint8_t *t_live, const uint8_t *target,
                       uint8_t *dead, bool *changed)
{
    for (int32_t pc = 0; pc + 1 < p->ncode; pc++) {
        ba_insn *prod = &p->code[pc];
        const ba_insn *mov = &p->code[pc + 1];
        if (mov->op != BA_OP_MOV || target[pc + 1] || t_live[pc + 1]
            || !writes_a(prod->op) || reads_a(prod->op)
            || prod->a != mov->b || mov->a == mov->b)
            continue;
        prod->a = mov->a;
        dead[pc + 1] = 1;
        *changed = true;
        pc++;            /* the MOV is gone: it cannot be the next producer */
    }
}

static int mark_fusions(ba_program *p, uint8_t *dead, bool *changed)
{
    size_t n = (size_t)p->ncode;
    int32_t *query = malloc(n * sizeof *query);
    uint8_t *t_live = calloc(n, 1), *target = malloc(n);
    int rc = BA_ERR_NO_MEMORY;
    if (query && t_live && target) {
        for (size_t pc = 0; pc < n; pc++)   /* is the MOV's source live after it? */
            query[pc] = p->code[pc].op == BA_OP_MOV ? p->code[pc].b : -1;
        rc = analyze_liveness(p, query, t_live, NULL);
    }
    if (rc == BA_OK) {
        mark_jump_targets(p, target);
        fuse_pairs(p, t_live, target, dead, changed);
    }
    free(query);
    free(t_live);
    free(target);
    return rc;
}

static int fuse_load_move(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_fusions);
}

/* Pairs of registers known to hold the same value, within one block. */
typedef struct { int32_t x, y; } copy_pair;

static bool has_pair(const copy_pair *pairs, int32_t n, int32_t x, int32_t y)
{
    for (int32_t i = 0; i < n; i++)
        if ((pairs[i].x == x && pairs[i].y == y) || (pairs[i].x == y && pairs[i].y == x))
            return true;
    return false;
}

static int32_t drop_pairs_with(copy_pair *pairs, int32_t n, int32_t r)
{
    for (int32_t i = 0; i < n;)
        if (pairs[i].x == r || pairs[i].y == r)
            pairs[i] = pairs[--n];
        else
            i++;
    return n;
}

/* MOV a, a, and MOV a, b while a and b already hold the same value. */
static int mark_redundant_moves(ba_program *p, uint8_t *dead, bool *changed)
{
    (void)changed;
    copy_pair *pairs = malloc((size_t)p->ncode * sizeof *pairs);
    uint8_t *target = malloc((size_t)p->ncode);
    if (!pairs || !target) {
        free(pairs);
        free(target);
        return BA_ERR_NO_MEMORY;
    }
    mark_jump_targets(p, target);
    int32_t npairs = 0;
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        const ba_insn *in = &p->code[pc];
        if (target[pc])
            npairs = 0;
        if (in->op == BA_OP_MOV
            && (in->a == in->b || has_pair(pairs, npairs, in->a, in->b))) {
            dead[pc] = 1;
            continue;
        }
        if (writes_a(in->op))
            npairs = drop_pairs_with(pairs, npairs, in->a);
        if (in->op == BA_OP_MOV)
            pairs[npairs++] = (copy_pair){in->a, in->b};
        if (ends_block(in->op))
            npairs = 0;
    }
    free(pairs);
    free(target);
    return BA_OK;
}

static int remove_redundant_moves(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_redundant_moves);
}

/* Where a jump really lands: through unconditional JMPs, and through the same
 * conditional jump on the same register (its outcome cannot differ). */
static int32_t final_target(const ba_program *p, const ba_insn *jump)
{
    int32_t t = jump->b;
    for (;;) {
        const ba_insn *at = &p->code[t];
        bool same_test = is_cond_jump(jump->op) && at->op == jump->op && at->a == jump->a;
        if (at->op != BA_OP_JMP && !same_test)
            return t;
        t = at->b;
    }
}

static int mark_threaded_jumps(ba_program *p, uint8_t *dead, bool *changed)
{
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        ba_insn *in = &p->code[pc];
        if (!is_jump(in->op))
            continue;
        int32_t t = final_target(p, in);
        *changed |= t != in->b;
        in->b = t;
        dead[pc] = t == pc + 1;   /* a jump to the next instruction does nothing */
    }
    return BA_OK;
}

static int thread_jumps(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_threaded_jumps);
}

/* Reachability from pc 0 in one forward sweep (jumps only go forward). */
static int mark_unreachable(ba_program *p, uint8_t *dead, bool *changed)
{
    (void)changed;
    uint8_t *reached = calloc((size_t)p->ncode, 1);
    if (!reached)
        return BA_ERR_NO_MEMORY;
    reached[0] = 1;
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        const ba_insn *in = &p->code[pc];
        dead[pc] = !reached[pc];
        if (!reached[pc])
            continue;
        if (!ends_block(in->op) && pc + 1 < p->ncode)
            reached[pc + 1] = 1;
        if (is_jump(in->op))
            reached[in->b] = 1;
    }
    free(reached);
    return BA_OK;
}

static int remove_unreachable(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_unreachable);
}

static int mark_dead_code(ba_program *p, uint8_t *dead, bool *changed)
{
    (void)changed;
    return analyze_liveness(p, NULL, NULL, dead);
}

static int remove_dead_code(ba_program *p, bool *changed)
{
    return delete_where(p, changed, mark_dead_code);
}

static const struct { const char *name; pass_fn run; } PASSES[] = {
    {"remove_nops", remove_nops},
    {"fold_constants", fold_constants},
    {"fuse_load_move", fuse_load_move},
    {"remove_redundant_moves", remove_redundant_moves},
    {"thread_jumps", thread_jumps},
    {"remove_unreachable", remove_unreachable},
    {"remove_dead_code", remove_dead_code},
};

/* C99 static assertion: the public BA_NPASSES matches the table. */
typedef char passes_match_header[sizeof PASSES / sizeof PASSES[0] == BA_NPASSES ? 1 : -1];

int ba_pass_count(void) { return BA_NPASSES; }

const char *ba_pass_name(int i) { return i >= 0 && i < BA_NPASSES ? PASSES[i].name : NULL; }

/* ------------------------------------------------------------------ driver */

/* Zero-tick: if nothing can jump before the first RET and its register was last
 * written by LOADK, the verdict is that constant on every row. */
static int32_t find_verdict(const ba_program *p)
{
    int32_t ret = 0;
    for (; p->code[ret].op != BA_OP_RET; ret++)
        if (is_jump(p->code[ret].op))
            return BA_VERDICT_UNKNOWN;
    int32_t pc = ret - 1, r = p->code[ret].a;
    while (pc >= 0 && !(writes_a(p->code[pc].op) && p->code[pc].a == r))
        pc--;
    if (pc < 0 || p->code[pc].op != BA_OP_LOADK)
        return BA_VERDICT_UNKNOWN;
    value v = constant(p, p->code[pc].b);
    return !v.valid ? BA_VERDICT_NULL : v.bits ? BA_VERDICT_TRUE : BA_VERDICT_FALSE;
}

int ba_optimize(ba_program *p, uint32_t pass_mask, ba_opt_stats *st)
{
    ba_opt_stats local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    st->verdict = BA_VERDICT_UNKNOWN;
    if (pass_mask >> BA_NPASSES)
        return BA_ERR_BAD_ARGUMENT;
    int rc = ba_validate(p);
    if (rc != BA_OK)
        return rc;
    st->before = p->ncode;
    bool changed = true;
    while (changed && st->rounds < BA_MAX_ROUNDS) {
        changed = false;
        st->rounds++;
        for (int i = 0; i < BA_NPASSES; i++) {
            if (!(pass_mask >> i & 1u))
                continue;
            int removed = PASSES[i].run(p, &changed);
            if (removed < 0)
                return removed;
            st->removed[i] += removed;
            changed |= removed > 0;
        }
    }
    st->after = p->ncode;
    st->verdict = find_verdict(p);
    return BA_OK;
}
