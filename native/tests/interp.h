/*
 * interp.h -- a small row-wise interpreter of opcodes.def, for the C tests only.
 *
 * Written from the opcode comments, apart from optimizer.c, so that the fuzz can
 * check that an optimized program computes what the original computes. A dataset
 * is one block of a few rows: jumps test every row of it. A register holds a word
 * and a valid flag per row; registers start NULL (in both runs, so a program that
 * reads a register before writing it still has one meaning).
 *
 * Integer overflow is NULL, checked here with plain comparisons (optimizer.c uses
 * the compiler's overflow builtins: two ways to the same answer). Float results
 * are the canonical NaN whenever they are NaN: payloads and signs of NaN are not
 * observable in SQL, the optimizer folds by that rule, and so a program that
 * reads a float's bits as an integer still compares exactly. ROUND_F is the one
 * opcode whose definition is an algorithm (DuckDB's): round_half_away below is
 * that algorithm again; the Python tests check it against exact decimals.
 */
#ifndef BATCHAOT_INTERP_H
#define BATCHAOT_INTERP_H

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../bytecode.h"

enum { INTERP_MAX_ROWS = 8, INTERP_MAX_COLS = 4, INTERP_MAX_LUTS = 4, INTERP_MAX_LUT = 8 };

typedef struct { bool valid; int64_t word; } cell;

typedef struct {
    int32_t nrows;                                     /* 1 .. INTERP_MAX_ROWS */
    cell col[INTERP_MAX_COLS][INTERP_MAX_ROWS];
    int32_t lut_len[INTERP_MAX_LUTS];                  /* 1 .. INTERP_MAX_LUT */
    cell lut[INTERP_MAX_LUTS][INTERP_MAX_LUT];
} dataset;

static const cell CELL_NULL = {false, 0};

static cell cell_int(int64_t x) { cell c = {true, x}; return c; }
static cell cell_bool(bool b) { return cell_int(b ? 1 : 0); }

static double word_float(int64_t w)
{
    double d;
    memcpy(&d, &w, sizeof d);
    return d;
}

static cell cell_float(double d)
{
    cell c = {true, 0x7ff8000000000000};
    if (!isnan(d))
        memcpy(&c.word, &d, sizeof d);
    return c;
}

/* ----------------------------------------------------- integer arithmetic */

static cell int_add(int64_t x, int64_t y)
{
    if ((y > 0 && x > INT64_MAX - y) || (y < 0 && x < INT64_MIN - y))
        return CELL_NULL;
    return cell_int(x + y);
}

static cell int_sub(int64_t x, int64_t y)
{
    if ((y < 0 && x > INT64_MAX + y) || (y > 0 && x < INT64_MIN + y))
        return CELL_NULL;
    return cell_int(x - y);
}

static uint64_t magnitude(int64_t x) { return x < 0 ? 0u - (uint64_t)x : (uint64_t)x; }

/* |x| * |y| in uint64 when it fits, then the sign: -2^63 is the one product whose
 * magnitude exceeds INT64_MAX and still fits. */
static cell int_mul(int64_t x, int64_t y)
{
    uint64_t mx = magnitude(x), my = magnitude(y);
    if (mx != 0 && my > UINT64_MAX / mx)
        return CELL_NULL;
    uint64_t m = mx * my;
    const uint64_t limit = (uint64_t)INT64_MAX;
    if ((x < 0) != (y < 0) && m != 0) {
        if (m > limit + 1)
            return CELL_NULL;
        return cell_int(m == limit + 1 ? INT64_MIN : -(int64_t)m);
    }
    return m > limit ? CELL_NULL : cell_int((int64_t)m);
}

static cell int_round(int64_t x, int32_t digits)
{
    if (digits >= 0)
        return cell_int(x);
    if (digits < -18) {   /* 10^19 and up: 0, or +-10^19 which leaves int64 */
        bool half = digits == -19 && magnitude(x) >= 5000000000000000000u;
        return half ? CELL_NULL : cell_int(0);
    }
    int64_t m = 1;
    for (int32_t i = 0; i < -digits; i++)
        m *= 10;
    int64_t q = x / m, r = x % m;
    if (2 * (uint64_t)magnitude(r) >= (uint64_t)m)
        q += x < 0 ? -1 : 1;
    return int_mul(q, m);
}

static cell int_narrow(int64_t x, int32_t type)
{
    bool fits;
    switch (type) {
    case BA_INT_I64: fits = true; break;
    case BA_INT_I8: fits = x >= -128 && x <= 127; break;
    case BA_INT_I16: fits = x >= -32768 && x <= 32767; break;
    case BA_INT_I32: fits = x >= -2147483647 - 1 && x <= 2147483647; break;
    case BA_INT_U8: fits = x >= 0 && x <= 255; break;
    case BA_INT_U16: fits = x >= 0 && x <= 65535; break;
    case BA_INT_U32: fits = x >= 0 && x <= 4294967295; break;
    case BA_INT_U64: fits = x >= 0; break;
    default: fits = false;   /* a type enum ba_int does not name: nothing fits */
    }
    return fits ? cell_int(x) : CELL_NULL;
}

/* ------------------------------------------------------- float arithmetic */

static int float_order(double x, double y)   /* NaN = NaN, above every number */
{
    if (isnan(x) || isnan(y))
        return isnan(x) && isnan(y) ? 0 : isnan(x) ? 1 : -1;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Nearest integer, ties to even; NULL for NaN and outside int64. */
static cell float_to_int(double x)
{
    if (!(x > -INFINITY && x < INFINITY))
        return CELL_NULL;
    double r = floor(x), frac = x - r;   /* exact */
    if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0.0))
        r += 1.0;
    if (r < -9223372036854775808.0 || r >= 9223372036854775808.0)
        return CELL_NULL;
    return cell_int((int64_t)r);
}

static double two_product_error(double a, double b, double p)
{
    const double split = 134217729.0;
    double t = split * a, ah = t - (t - a), al = a - ah;
    t = split * b;
    double bh = t - (t - b), bl = b - bh;
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

static double round_half_away(double x, int32_t digits)
{
    if (digits >= 0) {
        double m = pow(10.0, (double)digits), y = x * m;
        if (!isfinite(y))
            return x;
        double a = fabs(y), t = floor(a), frac = a - t;
        if (frac > 0.5 || (frac == 0.5 && two_product_error(x, m, y) * (y > 0 ? 1.0 : -1.0) >= 0.0))
            t += 1.0;
        return copysign(t, y) / m;
    }
    double m = pow(10.0, (double)-digits);
    if (!isfinite(x))
        return x;
    double a = fabs(x), rem = fmod(a, m), t = a - rem;
    if (2.0 * rem >= m)
        t += m;
    return copysign(t, x);
}

/* ------------------------------------------------------------- one row */

static bool cell_true(cell c) { return c.valid && c.word != 0; }
static bool cell_false(cell c) { return c.valid && c.word == 0; }

/* Every opcode that writes R[A] from R[B], R[C] / immediate, except LOAD,
 * LOADK, SELECT and LUT. */
static cell interp_scalar(int32_t op, cell b, cell c, int32_t imm)
{
    switch (op) {
    case BA_OP_MOV: return b;
    case BA_OP_AND:
        return cell_false(b) || cell_false(c) ? cell_bool(false)
             : b.valid && c.valid ? cell_bool(true) : CELL_NULL;
    case BA_OP_OR:
        return cell_true(b) || cell_true(c) ? cell_bool(true)
             : b.valid && c.valid ? cell_bool(false) : CELL_NULL;
    case BA_OP_ISNULL: return cell_bool(!b.valid);
    case BA_OP_NOTNULL: return cell_bool(b.valid);
    case BA_OP_COALESCE: return b.valid ? b : c;
    default: break;
    }
    bool binary = ba_optable[op].kind[2] == BA_KIND_R;
    if (!b.valid || (binary && !c.valid))
        return CELL_NULL;
    int64_t x = b.word, y = c.word;
    double fx = word_float(x), fy = word_float(y);
    switch (op) {
    case BA_OP_ADD_I: return int_add(x, y);
    case BA_OP_SUB_I: return int_sub(x, y);
    case BA_OP_MUL_I: return int_mul(x, y);
    case BA_OP_IDIV_I:
        return y == 0 || (x == INT64_MIN && y == -1) ? CELL_NULL : cell_int(x / y);
    case BA_OP_MOD_I:
        return y == 0 ? CELL_NULL : y == -1 ? cell_int(0) : cell_int(x % y);
    case BA_OP_NEG_I: return int_sub(0, x);
    case BA_OP_ABS_I: return x < 0 ? int_sub(0, x) : cell_int(x);
    case BA_OP_ROUND_I: return int_round(x, imm);
    case BA_OP_NARROW_I: return int_narrow(x, imm);
    case BA_OP_ADD_F: return cell_float(fx + fy);
    case BA_OP_SUB_F: return cell_float(fx - fy);
    case BA_OP_MUL_F: return cell_float(fx * fy);
    case BA_OP_DIV_F: return cell_float(fx / fy);
    case BA_OP_MOD_F: return cell_float(fmod(fx, fy));
    case BA_OP_NEG_F: return cell_float(-fx);
    case BA_OP_ABS_F: return cell_float(fabs(fx));
    case BA_OP_ROUND_F: return cell_float(round_half_away(fx, imm));
    case BA_OP_I2F: return cell_float((double)x);
    case BA_OP_F2S: return cell_float((double)(float)fx);
    case BA_OP_F2I: return float_to_int(fx);
    case BA_OP_EQ_I: return cell_bool(x == y);
    case BA_OP_NE_I: return cell_bool(x != y);
    case BA_OP_LT_I: return cell_bool(x < y);
    case BA_OP_LE_I: return cell_bool(x <= y);
    case BA_OP_GT_I: return cell_bool(x > y);
    case BA_OP_GE_I: return cell_bool(x >= y);
    case BA_OP_EQ_F: return cell_bool(float_order(fx, fy) == 0);
    case BA_OP_NE_F: return cell_bool(float_order(fx, fy) != 0);
    case BA_OP_LT_F: return cell_bool(float_order(fx, fy) < 0);
    case BA_OP_LE_F: return cell_bool(float_order(fx, fy) <= 0);
    case BA_OP_GT_F: return cell_bool(float_order(fx, fy) > 0);
    case BA_OP_GE_F: return cell_bool(float_order(fx, fy) >= 0);
    case BA_OP_NOT: return cell_bool(x == 0);
    default: abort();   /* not a scalar opcode: a bug in the caller */
    }
}

/* --------------------------------------------------------------- programs */

/* Runs a valid program on every row of d (nluts, ncols within d's tables);
 * out gets the RET register, a cell per row. 0, or -1 when out of memory. */
static int interp_run(const ba_program *p, const dataset *d, cell *out)
{
    const int32_t n = d->nrows;
    cell *reg = calloc((size_t)p->nregs * (size_t)n + 1, sizeof *reg);  /* all NULL */
    if (!reg)
        return -1;
    for (int32_t pc = 0; pc < p->ncode;) {
        const ba_insn in = p->code[pc++];
        const signed char *kind = ba_optable[in.op].kind;   /* rows only of registers */
        cell *a = kind[0] == BA_KIND_R ? reg + (size_t)in.a * (size_t)n : NULL;
        const cell *b = kind[1] == BA_KIND_R ? reg + (size_t)in.b * (size_t)n : NULL;
        const cell *c = kind[2] == BA_KIND_R ? reg + (size_t)in.c * (size_t)n : NULL;
        bool all_false = true, all_true = true, none_true = true;
        switch (in.op) {
        case BA_OP_NOP: break;
        case BA_OP_RET:
            memcpy(out, a, (size_t)n * sizeof *out);
            free(reg);
            return 0;
        case BA_OP_JMP: pc = in.b; break;
        case BA_OP_JALLF: case BA_OP_JALLT: case BA_OP_JNONET:
            for (int32_t i = 0; i < n; i++) {
                all_false &= cell_false(a[i]);
                all_true &= cell_true(a[i]);
                none_true &= !cell_true(a[i]);
            }
            if (in.op == BA_OP_JALLF ? all_false : in.op == BA_OP_JALLT ? all_true : none_true)
                pc = in.b;
            break;
        case BA_OP_LOAD:
            memcpy(a, d->col[in.b], (size_t)n * sizeof *a);
            break;
        case BA_OP_LOADK:
            for (int32_t i = 0; i < n; i++)
                a[i] = p->kvalid[in.b] ? cell_int(p->kval[in.b]) : CELL_NULL;
            break;
        case BA_OP_SELECT:
            for (int32_t i = 0; i < n; i++)
                if (cell_true(b[i]))
                    a[i] = c[i];
            break;
        case BA_OP_LUT: {
            const cell *table = d->lut[in.c];
            int32_t last = d->lut_len[in.c] - 1;
            for (int32_t i = 0; i < n; i++) {
                bool code_ok = b[i].valid && b[i].word >= 0 && b[i].word < last;
                a[i] = table[code_ok ? b[i].word : last];
            }
            break;
        }
        default: {
            cell row[INTERP_MAX_ROWS];   /* a may be b or c: compute, then store */
            for (int32_t i = 0; i < n; i++)
                row[i] = interp_scalar(in.op, b[i], c ? c[i] : CELL_NULL, in.c);
            memcpy(a, row, (size_t)n * sizeof *a);
        }
        }
    }
    free(reg);
    abort();   /* a valid program ends with RET */
}

#endif /* BATCHAOT_INTERP_H */
