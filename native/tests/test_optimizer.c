/* test_optimizer.c -- validation, opcode tables, each optimizer pass, and fuzz:
 * random programs keep their invariants and, run by interp.h on random rows,
 * compute the same verdicts before and after optimization. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../bytecode.h"
#include "check.h"
#include "interp.h"

#define I(op, a, b, c) {BA_OP_##op, a, b, c}
#define LEN(x) ((int32_t)(sizeof(x) / sizeof((x)[0])))
#define ALL_PASSES ((1u << BA_NPASSES) - 1)

enum { CAP = 64, NCOLS = 3, NLUTS = 2 };

/* A program with room for CAP instructions and constants. */
typedef struct {
    ba_insn code[CAP];
    int64_t kval[CAP];
    uint8_t kvalid[CAP];
    ba_program p;
} fixture;

/* Constants are valid unless listed in `nulls` (a bit per constant index). */
static ba_program *load(fixture *f, const ba_insn *code, int32_t ncode, const int64_t *kval,
                        int32_t nconst, uint32_t nulls, int32_t nregs)
{
    memset(f, 0, sizeof *f);
    memcpy(f->code, code, (size_t)ncode * sizeof *code);
    for (int32_t k = 0; k < nconst; k++) {
        f->kval[k] = kval[k];
        f->kvalid[k] = !(nulls >> k & 1u);
    }
    f->p = (ba_program){f->code, ncode, f->kval, f->kvalid, nconst, CAP, nregs, NCOLS, NLUTS};
    return &f->p;
}

static bool same_code(const ba_program *p, const ba_insn *want, int32_t n)
{
    return p->ncode == n && memcmp(p->code, want, (size_t)n * sizeof *want) == 0;
}

static uint32_t pass_bit(const char *name)
{
    for (int i = 0; i < ba_pass_count(); i++)
        if (strcmp(ba_pass_name(i), name) == 0)
            return 1u << i;
    CHECK(!"unknown pass name");
    return 0;
}

static int64_t bits_of(double d)
{
    int64_t w;
    memcpy(&w, &d, sizeof w);
    return w;
}

/* Runs one pass; checks the code it leaves and the count it reports. */
static void expect_pass(const char *name, const ba_insn *in, int32_t nin, const int64_t *k,
                        int32_t nk, const ba_insn *out, int32_t nout)
{
    fixture f;
    ba_opt_stats st;
    ba_program *p = load(&f, in, nin, k, nk, 0, 4);
    CHECK(ba_optimize(p, pass_bit(name), &st) == BA_OK);
    CHECK(same_code(p, out, nout));
    CHECK(st.before - st.after == nin - nout);
    int32_t total = 0;
    for (int i = 0; i < BA_NPASSES; i++)
        total += st.removed[i];
    CHECK(total == nin - nout);
    CHECK(ba_validate(p) == BA_OK);
}

/* ----------------------------------------------------------------- validation */

static void test_validate(void)
{
    fixture f;
    int64_t k[] = {1};
    int32_t pc;
    static const struct { ba_insn bad; int err; } cases[] = {
        {{-1, 0, 0, 0}, BA_ERR_BAD_OPCODE},
        {{BA_OP_COUNT, 0, 0, 0}, BA_ERR_BAD_OPCODE},
        {I(LOADK, 1, 0, 0), BA_ERR_BAD_REGISTER},
        {I(LOADK, -1, 0, 0), BA_ERR_BAD_REGISTER},
        {I(LOADK, 0, 1, 0), BA_ERR_BAD_CONSTANT},
        {I(LOADK, 0, -1, 0), BA_ERR_BAD_CONSTANT},
        {I(LOAD, 0, NCOLS, 0), BA_ERR_BAD_COLUMN},
        {I(LUT, 0, 0, NLUTS), BA_ERR_BAD_LUT},
        {I(JMP, 0, 0, 0), BA_ERR_BAD_JUMP},      /* to itself */
        {I(JMP, 0, 2, 0), BA_ERR_BAD_JUMP},      /* past the end */
        {I(JALLF, 0, -5, 0), BA_ERR_BAD_JUMP},
        {I(LOADK, 0, 0, 5), BA_ERR_NONZERO_UNUSED},
        {I(JMP, 3, 1, 0), BA_ERR_NONZERO_UNUSED},
        {I(NOP, 0, 0, 1), BA_ERR_NONZERO_UNUSED},
    };
    for (int i = 0; i < LEN(cases); i++) {
        ba_insn code[] = {cases[i].bad, I(RET, 0, 0, 0)};
        CHECK(ba_validate_at(load(&f, code, 2, k, 1, 0, 1), &pc) == cases[i].err);
        CHECK(pc == 0);
    }
    ba_insn ok[] = {I(ROUND_I, 0, 0, -2147483647 - 1), I(JMP, 0, 2, 0), I(RET, 0, 0, 0)};
    CHECK(ba_validate_at(load(&f, ok, 3, k, 1, 0, 1), &pc) == BA_OK && pc == -1);
    ba_insn no_ret[] = {I(LOADK, 0, 0, 0), I(NOP, 0, 0, 0)};
    CHECK(ba_validate_at(load(&f, no_ret, 2, k, 1, 0, 1), &pc) == BA_ERR_MISSING_RET && pc == 1);
    ba_insn first_error_wins[] = {I(LOADK, 0, 0, 0), I(LOADK, 7, 0, 0), I(LOADK, 0, 9, 0)};
    CHECK(ba_validate_at(load(&f, first_error_wins, 3, k, 1, 0, 1), &pc) == BA_ERR_BAD_REGISTER && pc == 1);

    ba_program *p = load(&f, ok, 3, k, 1, 0, 1);
    CHECK(ba_validate_at(NULL, &pc) == BA_ERR_BAD_ARGUMENT && pc == -1);
    p->ncode = 0;
    CHECK(ba_validate(p) == BA_ERR_BAD_ARGUMENT);
    p = load(&f, ok, 3, k, 1, 0, 1);
    p->code = NULL;
    CHECK(ba_validate(p) == BA_ERR_BAD_ARGUMENT);
    p = load(&f, ok, 3, k, 1, 0, 1);
    p->nregs = -1;
    CHECK(ba_validate(p) == BA_ERR_BAD_ARGUMENT);
    p = load(&f, ok, 3, k, 1, 0, 1);
    p->kcap = 0;
    CHECK(ba_validate(p) == BA_ERR_BAD_ARGUMENT);
    p = load(&f, ok, 3, k, 1, 0, 1);
    p->kvalid = NULL;
    CHECK(ba_validate(p) == BA_ERR_BAD_ARGUMENT);
    CHECK(ba_optimize(NULL, ALL_PASSES, NULL) == BA_ERR_BAD_ARGUMENT);
    p = load(&f, ok, 3, k, 1, 0, 1);
    CHECK(ba_optimize(p, 1u << BA_NPASSES, NULL) == BA_ERR_BAD_ARGUMENT);
}

static void test_tables(void)
{
    CHECK(ba_op_count() == BA_OP_COUNT);
    CHECK(strcmp(ba_op_name(BA_OP_NOP), "NOP") == 0);
    CHECK(strcmp(ba_op_name(BA_OP_RET), "RET") == 0);
    CHECK(strcmp(ba_op_name(BA_OP_ADD_I), "ADD_I") == 0);
    CHECK(ba_op_name(-1) == NULL && ba_op_name(BA_OP_COUNT) == NULL);
    CHECK(ba_op_doc(BA_OP_COUNT) == NULL && strstr(ba_op_doc(BA_OP_MOV), "R[B]") != NULL);
    CHECK(ba_op_kind(BA_OP_ADD_I, 2) == BA_KIND_R);
    CHECK(ba_op_kind(BA_OP_LOADK, 1) == BA_KIND_K);
    CHECK(ba_op_kind(BA_OP_JMP, 0) == BA_KIND_NONE && ba_op_kind(BA_OP_JMP, 1) == BA_KIND_J);
    CHECK(ba_op_kind(BA_OP_ROUND_F, 2) == BA_KIND_N && ba_op_kind(BA_OP_LUT, 2) == BA_KIND_L);
    CHECK(ba_op_kind(BA_OP_ADD_I, 3) == -1 && ba_op_kind(-1, 0) == -1);
    CHECK(strcmp(ba_op_family(BA_OP_ADD_I), "add") == 0 && strcmp(ba_op_family(BA_OP_ADD_F), "add") == 0);
    CHECK(strcmp(ba_op_classes(BA_OP_LT_F), "bff") == 0 && strcmp(ba_op_classes(BA_OP_SELECT), "xbx") == 0);
    CHECK(strcmp(ba_op_symbol(BA_OP_LT_I), "<") == 0 && strcmp(ba_op_symbol(BA_OP_AND), "") == 0);
    CHECK(ba_op_flags(BA_OP_JMP) == (BA_OPF_JUMP | BA_OPF_TERMINATOR));
    CHECK(ba_op_flags(BA_OP_NOP) == 0 && ba_op_flags(BA_OP_COUNT) == -1 && ba_op_flags(-1) == -1);
    CHECK(ba_op_family(BA_OP_COUNT) == NULL && ba_op_classes(-1) == NULL && ba_op_symbol(-1) == NULL);
    /* the enum and the table come from the same rows: every name at its number */
#define OP(name, ...) CHECK(strcmp(ba_op_name(BA_OP_##name), #name) == 0);
#include "../opcodes.def"
#undef OP
    for (int op = 0; op < BA_OP_COUNT; op++) {
        const ba_opinfo *info = &ba_optable[op];
        CHECK(strlen(info->classes) == 3 && info->doc[0] != '\0' && info->family[0] != '\0');
        for (int i = 0; i < 3; i++)   /* a class letter exactly where a register is */
            CHECK((info->classes[i] != '_') == (info->kind[i] == BA_KIND_R)
                  && strchr("ifbx_", info->classes[i]) != NULL);
    }
    CHECK(ba_pass_count() == BA_NPASSES && ba_pass_name(BA_NPASSES) == NULL);
    CHECK(strcmp(ba_pass_name(0), "remove_nops") == 0);
    CHECK(strcmp(ba_pass_name(BA_NPASSES - 1), "remove_dead_code") == 0);
    for (int code = BA_ERR_DOUBLE_FREE; code <= 0; code++) {
        CHECK(strcmp(ba_strerror(code), "unknown error") != 0);
        for (int other = code + 1; other <= 0; other++)
            CHECK(strcmp(ba_strerror(code), ba_strerror(other)) != 0);
    }
    CHECK(strcmp(ba_strerror(1), "unknown error") == 0);
}

/* -------------------------------------------------------------------- passes */

static void test_remove_nops(void)
{
    int64_t k[] = {1};
    ba_insn in[] = {I(NOP, 0, 0, 0), I(LOADK, 0, 0, 0), I(JALLF, 0, 4, 0), I(LOADK, 1, 0, 0),
                    I(NOP, 0, 0, 0), I(RET, 0, 0, 0)};
    ba_insn out[] = {I(LOADK, 0, 0, 0), I(JALLF, 0, 3, 0), I(LOADK, 1, 0, 0), I(RET, 0, 0, 0)};
    expect_pass("remove_nops", in, LEN(in), k, 1, out, LEN(out));
}

/* OP r2, r0, r1 (or OP r2, r0, imm) on constants a, b: folds to LOADK of `want`. */
static void expect_fold(int32_t op, int64_t a, int64_t b, int32_t imm, bool want_valid, int64_t want)
{
    fixture f;
    int64_t k[] = {a, b};
    int32_t c = ba_optable[op].kind[2] == BA_KIND_R ? 1 : imm;
    ba_insn in[] = {I(LOADK, 0, 0, 0), I(LOADK, 1, 1, 0), {op, 2, 0, c}, I(RET, 2, 0, 0)};
    ba_program *p = load(&f, in, 4, k, 2, 0, 3);
    CHECK(ba_optimize(p, pass_bit("fold_constants"), NULL) == BA_OK);
    CHECK(p->code[2].op == BA_OP_LOADK);
    int32_t at = p->code[2].b;
    CHECK(!!p->kvalid[at] == want_valid);
    CHECK(p->kval[at] == (want_valid ? want : 0));
    if (!(p->code[2].op == BA_OP_LOADK && !!p->kvalid[at] == want_valid
          && p->kval[at] == (want_valid ? want : 0)))
        fprintf(stderr, "  fold of %s(%lld, %lld; %d)\n", ba_op_name(op), (long long)a,
                (long long)b, imm);
}

static void test_fold_semantics(void)
{
    const double nan = NAN, inf = INFINITY;
    /* integer overflow folds to NULL (DuckDB's TRY), never to a wrapped value */
    expect_fold(BA_OP_ADD_I, INT64_MAX, 1, 0, false, 0);
    expect_fold(BA_OP_ADD_I, INT64_MIN, -1, 0, false, 0);
    expect_fold(BA_OP_ADD_I, INT64_MAX, INT64_MAX, 0, false, 0);
    expect_fold(BA_OP_ADD_I, INT64_MIN, INT64_MIN, 0, false, 0);
    expect_fold(BA_OP_ADD_I, INT64_MAX, -1, 0, true, INT64_MAX - 1);
    expect_fold(BA_OP_ADD_I, INT64_MIN, INT64_MAX, 0, true, -1);
    expect_fold(BA_OP_ADD_I, INT64_MAX - 1, 1, 0, true, INT64_MAX);
    expect_fold(BA_OP_SUB_I, INT64_MIN, 1, 0, false, 0);
    expect_fold(BA_OP_SUB_I, 0, INT64_MIN, 0, false, 0);
    expect_fold(BA_OP_SUB_I, INT64_MAX, -1, 0, false, 0);
    expect_fold(BA_OP_SUB_I, INT64_MAX, INT64_MIN, 0, false, 0);
    expect_fold(BA_OP_SUB_I, -1, INT64_MIN, 0, true, INT64_MAX);
    expect_fold(BA_OP_SUB_I, INT64_MIN, INT64_MIN, 0, true, 0);
    expect_fold(BA_OP_SUB_I, INT64_MIN + 1, 1, 0, true, INT64_MIN);
    expect_fold(BA_OP_MUL_I, INT64_MIN, -1, 0, false, 0);
    expect_fold(BA_OP_MUL_I, -1, INT64_MIN, 0, false, 0);
    expect_fold(BA_OP_MUL_I, INT64_MIN, 1, 0, true, INT64_MIN);
    expect_fold(BA_OP_MUL_I, INT64_MIN, 0, 0, true, 0);
    expect_fold(BA_OP_MUL_I, INT64_MAX, -1, 0, true, -INT64_MAX);
    expect_fold(BA_OP_MUL_I, INT64_MAX, 2, 0, false, 0);
    expect_fold(BA_OP_MUL_I, (int64_t)1 << 62, 2, 0, false, 0);
    expect_fold(BA_OP_MUL_I, -((int64_t)1 << 62), 2, 0, true, INT64_MIN);
    expect_fold(BA_OP_MUL_I, 3037000499, 3037000499, 0, true, 9223372030926249001);
    expect_fold(BA_OP_MUL_I, 3037000500, 3037000500, 0, false, 0);
    expect_fold(BA_OP_MUL_I, -3037000500, 3037000500, 0, false, 0);
    expect_fold(BA_OP_MUL_I, 4294967296, 4294967296, 0, false, 0);
    expect_fold(BA_OP_IDIV_I, INT64_MIN, -1, 0, false, 0);
    expect_fold(BA_OP_IDIV_I, INT64_MIN, 1, 0, true, INT64_MIN);
    expect_fold(BA_OP_IDIV_I, INT64_MIN, 2, 0, true, INT64_MIN / 2);
    expect_fold(BA_OP_IDIV_I, INT64_MAX, -1, 0, true, -INT64_MAX);
    expect_fold(BA_OP_IDIV_I, -7, 2, 0, true, -3);
    expect_fold(BA_OP_IDIV_I, 7, 0, 0, false, 0);
    expect_fold(BA_OP_MOD_I, -7, 2, 0, true, -1);
    expect_fold(BA_OP_MOD_I, INT64_MIN, -1, 0, true, 0);
    expect_fold(BA_OP_MOD_I, INT64_MIN, INT64_MAX, 0, true, -1);
    expect_fold(BA_OP_MOD_I, 7, 0, 0, false, 0);
    expect_fold(BA_OP_NEG_I, INT64_MIN, 0, 0, false, 0);
    expect_fold(BA_OP_NEG_I, INT64_MAX, 0, 0, true, -INT64_MAX);
    expect_fold(BA_OP_NEG_I, INT64_MIN + 1, 0, 0, true, INT64_MAX);
    expect_fold(BA_OP_ABS_I, INT64_MIN, 0, 0, false, 0);
    expect_fold(BA_OP_ABS_I, INT64_MIN + 1, 0, 0, true, INT64_MAX);
    expect_fold(BA_OP_ABS_I, -5, 0, 0, true, 5);
    /* NARROW_I: the value where it fits the type, else NULL */
    expect_fold(BA_OP_NARROW_I, INT64_MIN, 0, BA_INT_I64, true, INT64_MIN);
    expect_fold(BA_OP_NARROW_I, 127, 0, BA_INT_I8, true, 127);
    expect_fold(BA_OP_NARROW_I, 128, 0, BA_INT_I8, false, 0);
    expect_fold(BA_OP_NARROW_I, -128, 0, BA_INT_I8, true, -128);
    expect_fold(BA_OP_NARROW_I, -129, 0, BA_INT_I8, false, 0);
    expect_fold(BA_OP_NARROW_I, 32767, 0, BA_INT_I16, true, 32767);
    expect_fold(BA_OP_NARROW_I, -32769, 0, BA_INT_I16, false, 0);
    expect_fold(BA_OP_NARROW_I, 2147483647, 0, BA_INT_I32, true, 2147483647);
    expect_fold(BA_OP_NARROW_I, 2147483648, 0, BA_INT_I32, false, 0);
    expect_fold(BA_OP_NARROW_I, -2147483648, 0, BA_INT_I32, true, -2147483648);
    expect_fold(BA_OP_NARROW_I, -2147483649, 0, BA_INT_I32, false, 0);
    expect_fold(BA_OP_NARROW_I, INT64_MIN, 0, BA_INT_I32, false, 0);
    expect_fold(BA_OP_NARROW_I, 255, 0, BA_INT_U8, true, 255);
    expect_fold(BA_OP_NARROW_I, 256, 0, BA_INT_U8, false, 0);
    expect_fold(BA_OP_NARROW_I, -1, 0, BA_INT_U8, false, 0);
    expect_fold(BA_OP_NARROW_I, 65535, 0, BA_INT_U16, true, 65535);
    expect_fold(BA_OP_NARROW_I, 65536, 0, BA_INT_U16, false, 0);
    expect_fold(BA_OP_NARROW_I, 4294967295, 0, BA_INT_U32, true, 4294967295);
    expect_fold(BA_OP_NARROW_I, 4294967296, 0, BA_INT_U32, false, 0);
    expect_fold(BA_OP_NARROW_I, INT64_MAX, 0, BA_INT_U64, true, INT64_MAX);
    expect_fold(BA_OP_NARROW_I, 0, 0, BA_INT_U64, true, 0);
    expect_fold(BA_OP_NARROW_I, -1, 0, BA_INT_U64, false, 0);
    expect_fold(BA_OP_NARROW_I, INT64_MIN, 0, BA_INT_U64, false, 0);
    expect_fold(BA_OP_ROUND_I, 1250, 0, -2, true, 1300);
    expect_fold(BA_OP_ROUND_I, -1250, 0, -2, true, -1300);
    expect_fold(BA_OP_ROUND_I, 1249, 0, -2, true, 1200);
    expect_fold(BA_OP_ROUND_I, 1249, 0, 3, true, 1249);
    expect_fold(BA_OP_ROUND_F, bits_of(2.5), 0, 0, true, bits_of(3.0));
    expect_fold(BA_OP_ROUND_F, bits_of(-2.5), 0, 0, true, bits_of(-3.0));
    expect_fold(BA_OP_ROUND_F, bits_of(-0.25), 0, 0, true, bits_of(-0.0));
    expect_fold(BA_OP_ROUND_F, bits_of(1e308), 0, 400, true, bits_of(1e308));
    expect_fold(BA_OP_ROUND_F, bits_of(1234.5), 0, -2, true, bits_of(1200.0));
    expect_fold(BA_OP_F2I, bits_of(2.5), 0, 0, true, 2);
    expect_fold(BA_OP_F2I, bits_of(3.5), 0, 0, true, 4);
    expect_fold(BA_OP_F2I, bits_of(-2.5), 0, 0, true, -2);
    expect_fold(BA_OP_F2I, bits_of(nan), 0, 0, false, 0);
    expect_fold(BA_OP_F2I, bits_of(9.3e18), 0, 0, false, 0);
    expect_fold(BA_OP_F2I, bits_of(-9223372036854775808.0), 0, 0, true, INT64_MIN);
    expect_fold(BA_OP_I2F, 3, 0, 0, true, bits_of(3.0));
    /* F2S: to the nearest float32, ties to even; past its range +-inf */
    expect_fold(BA_OP_F2S, bits_of(0.1), 0, 0, true, bits_of(0.100000001490116119384765625));
    expect_fold(BA_OP_F2S, bits_of(16777217.0), 0, 0, true, bits_of(16777216.0));
    expect_fold(BA_OP_F2S, bits_of(16777219.0), 0, 0, true, bits_of(16777220.0));
    expect_fold(BA_OP_F2S, bits_of(6.9e38), 0, 0, true, bits_of(inf));
    expect_fold(BA_OP_F2S, bits_of(-6.9e38), 0, 0, true, bits_of(-inf));
    expect_fold(BA_OP_DIV_F, bits_of(1.0), bits_of(-0.0), 0, true, bits_of(-inf));
    expect_fold(BA_OP_DIV_F, bits_of(0.0), bits_of(0.0), 0, true, (int64_t)0x7ff8000000000000);
    expect_fold(BA_OP_NEG_F, bits_of(nan), 0, 0, true, (int64_t)0x7ff8000000000000);
    expect_fold(BA_OP_MOD_F, bits_of(5.5), bits_of(0.0), 0, true, (int64_t)0x7ff8000000000000);
    expect_fold(BA_OP_EQ_F, bits_of(nan), bits_of(nan), 0, true, 1);
    expect_fold(BA_OP_EQ_F, bits_of(-0.0), bits_of(0.0), 0, true, 1);
    expect_fold(BA_OP_GT_F, bits_of(nan), bits_of(inf), 0, true, 1);
    expect_fold(BA_OP_LT_F, bits_of(nan), bits_of(1.0), 0, true, 0);
    expect_fold(BA_OP_LT_I, -1, 1, 0, true, 1);
    expect_fold(BA_OP_NE_I, 4, 4, 0, true, 0);
}

static void test_fold_narrow(void)
{
    fixture f;
    int64_t k[] = {5};
    /* a type enum ba_int does not name is left to the VM */
    for (int32_t type = -1; type <= BA_INT_U64 + 1; type += BA_INT_U64 + 2) {
        ba_insn in[] = {I(LOADK, 0, 0, 0), {BA_OP_NARROW_I, 1, 0, type}, I(RET, 1, 0, 0)};
        ba_program *p = load(&f, in, LEN(in), k, 1, 0, 2);
        CHECK(ba_optimize(p, pass_bit("fold_constants"), NULL) == BA_OK && same_code(p, in, 3));
    }
    /* every int64 fits int64: a MOV, which the other passes then remove */
    ba_insn wide[] = {I(LOAD, 0, 0, 0), {BA_OP_NARROW_I, 1, 0, BA_INT_I64}, I(RET, 1, 0, 0)};
    ba_insn wide_out[] = {I(LOAD, 0, 0, 0), I(MOV, 1, 0, 0), I(RET, 1, 0, 0)};
    expect_pass("fold_constants", wide, LEN(wide), k, 1, wide_out, LEN(wide_out));
    ba_opt_stats st;
    ba_program *p = load(&f, wide, LEN(wide), k, 1, 0, 2);
    ba_insn wide_all[] = {I(LOAD, 1, 0, 0), I(RET, 1, 0, 0)};
    CHECK(ba_optimize(p, ALL_PASSES, &st) == BA_OK && same_code(p, wide_all, 2));
    /* a narrower type on a column stays; on a NULL constant it folds to NULL */
    ba_insn narrow[] = {I(LOAD, 0, 0, 0), {BA_OP_NARROW_I, 1, 0, BA_INT_I8}, I(RET, 1, 0, 0)};
    expect_pass("fold_constants", narrow, LEN(narrow), k, 1, narrow, LEN(narrow));
    ba_insn of_null[] = {I(LOADK, 0, 0, 0), {BA_OP_NARROW_I, 1, 0, 99}, I(RET, 1, 0, 0)};
    p = load(&f, of_null, LEN(of_null), k, 1, 1u, 2);
    CHECK(ba_optimize(p, ALL_PASSES, &st) == BA_OK && st.verdict == BA_VERDICT_NULL);
}

static void test_fold_logic_and_nulls(void)
{
    fixture f;
    int64_t k[] = {1, 0, 0};                    /* TRUE, FALSE, NULL (bit 2) */
    const uint32_t nulls = 1u << 2;
    /* three-valued AND / OR on constants */
    static const struct { int32_t op; int32_t kb, kc; bool valid; int64_t v; } logic[] = {
        {BA_OP_AND, 1, 2, true, 0}, {BA_OP_AND, 0, 2, false, 0}, {BA_OP_AND, 0, 0, true, 1},
        {BA_OP_OR, 0, 2, true, 1}, {BA_OP_OR, 1, 2, false, 0}, {BA_OP_OR, 1, 1, true, 0},
        {BA_OP_COALESCE, 2, 1, true, 0}, {BA_OP_ISNULL, 2, 0, true, 1},
        {BA_OP_NOTNULL, 2, 0, true, 0}, {BA_OP_NOT, 2, 0, false, 0},
        {BA_OP_ADD_I, 0, 2, false, 0},
    };
    for (int i = 0; i < LEN(logic); i++) {
        int32_t c = ba_optable[logic[i].op].kind[2] == BA_KIND_R ? 1 : 0;
        ba_insn in[] = {{BA_OP_LOADK, 0, logic[i].kb, 0}, {BA_OP_LOADK, 1, logic[i].kc, 0},
                        {logic[i].op, 2, 0, c}, I(RET, 2, 0, 0)};
        ba_opt_stats st;
        ba_program *p = load(&f, in, 4, k, 3, nulls, 3);
        CHECK(ba_optimize(p, ALL_PASSES, &st) == BA_OK);
        CHECK(p->ncode == 2 && p->code[0].op == BA_OP_LOADK && p->nconst == 3);
        CHECK(st.verdict == (!logic[i].valid ? BA_VERDICT_NULL
                             : logic[i].v ? BA_VERDICT_TRUE : BA_VERDICT_FALSE));
    }
    /* identities with an unknown input: r0 is a column */
    ba_insn and_false[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 1, 0), I(AND, 2, 0, 1), I(RET, 2, 0, 0)};
    ba_insn and_false_out[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 1, 0), I(LOADK, 2, 1, 0), I(RET, 2, 0, 0)};
    expect_pass("fold_constants", and_false, 4, k, 3, and_false_out, 4);
    ba_insn and_true[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 0, 0), I(AND, 2, 1, 0), I(RET, 2, 0, 0)};
    ba_insn and_true_out[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 0, 0), I(MOV, 2, 0, 0), I(RET, 2, 0, 0)};
    expect_pass("fold_constants", and_true, 4, k, 3, and_true_out, 4);
    ba_insn or_true[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 0, 0), I(OR, 2, 0, 1), I(RET, 2, 0, 0)};
    ba_insn or_true_out[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 0, 0), I(LOADK, 2, 0, 0), I(RET, 2, 0, 0)};
    expect_pass("fold_constants", or_true, 4, k, 3, or_true_out, 4);
    ba_insn and_null[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 2, 0), I(AND, 2, 0, 1), I(RET, 2, 0, 0)};
    ba_program *p = load(&f, and_null, 4, k, 3, nulls, 3);
    CHECK(ba_optimize(p, pass_bit("fold_constants"), NULL) == BA_OK && same_code(p, and_null, 4));
}

static void test_fold_control(void)
{
    int64_t k[] = {0, 1, 7};
    /* a known FALSE makes JALLF unconditional and JALLT impossible */
    ba_insn jumps[] = {I(LOADK, 0, 0, 0), I(JALLT, 0, 3, 0), I(JALLF, 0, 4, 0), I(LOADK, 0, 1, 0),
                       I(RET, 0, 0, 0)};
    ba_insn jumps_out[] = {I(LOADK, 0, 0, 0), I(JMP, 0, 3, 0), I(LOADK, 0, 1, 0), I(RET, 0, 0, 0)};
    expect_pass("fold_constants", jumps, LEN(jumps), k, 3, jumps_out, LEN(jumps_out));
    /* a known TRUE turns SELECT into MOV; a known FALSE removes it */
    ba_insn select[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 1, 0), I(LOADK, 2, 0, 0),
                        I(SELECT, 0, 1, 3), I(SELECT, 0, 2, 3), I(RET, 0, 0, 0)};
    ba_insn select_out[] = {I(LOAD, 0, 0, 0), I(LOADK, 1, 1, 0), I(LOADK, 2, 0, 0),
                            I(MOV, 0, 3, 0), I(RET, 0, 0, 0)};
    expect_pass("fold_constants", select, LEN(select), k, 3, select_out, LEN(select_out));
    /* knowledge does not cross a jump target: r1 is unknown at pc 3 */
    ba_insn join[] = {I(LOAD, 0, 0, 0), I(JALLF, 0, 3, 0), I(LOADK, 1, 2, 0), I(ADD_I, 2, 1, 1),
                      I(RET, 2, 0, 0)};
    expect_pass("fold_constants", join, LEN(join), k, 3, join, LEN(join));
}

static void test_fold_constant_pool(void)
{
    fixture f;
    int64_t k[] = {2, 3};
    ba_insn in[] = {I(LOADK, 0, 0, 0), I(LOADK, 1, 1, 0), I(ADD_I, 2, 0, 1), I(SUB_I, 3, 1, 1),
                    I(ADD_I, 3, 2, 3), I(RET, 3, 0, 0)};
    ba_program *p = load(&f, in, LEN(in), k, 2, 0, 4);
    p->kcap = 3;              /* room for 5, then 0 no longer fits */
    CHECK(ba_optimize(p, pass_bit("fold_constants"), NULL) == BA_OK);
    CHECK(p->nconst == 3 && p->kval[2] == 5);
    CHECK(p->code[2].op == BA_OP_LOADK && p->code[2].b == 2);
    CHECK(p->code[3].op == BA_OP_SUB_I);        /* 0 is new and the pool is full */
    CHECK(p->code[4].op == BA_OP_ADD_I);
    /* an existing equal constant is reused */
    int64_t k2[] = {2, 3, 5};
    p = load(&f, in, LEN(in), k2, 3, 0, 4);
    CHECK(ba_optimize(p, ALL_PASSES, NULL) == BA_OK);
    CHECK(p->nconst == 4 && p->kval[3] == 0);
    CHECK(p->ncode == 2 && p->code[0].op == BA_OP_LOADK && p->code[0].b == 2);
}

static void test_fuse_load_move(void)
{
    int64_t k[] = {1};
    ba_insn in[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(RET, 0, 0, 0)};
    ba_insn out[] = {I(LOAD, 0, 0, 0), I(RET, 0, 0, 0)};
    expect_pass("fuse_load_move", in, LEN(in), k, 1, out, LEN(out));
    /* the temporary is read later: no fusion */
    ba_insn live[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(ADD_I, 2, 0, 1), I(RET, 2, 0, 0)};
    expect_pass("fuse_load_move", live, LEN(live), k, 1, live, LEN(live));
    /* ... also when read only on the jump path */
    ba_insn via_jump[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(JALLF, 0, 4, 0), I(RET, 0, 0, 0),
                          I(RET, 1, 0, 0)};
    expect_pass("fuse_load_move", via_jump, LEN(via_jump), k, 1, via_jump, LEN(via_jump));
    /* the MOV is a jump target: another path reaches it */
    ba_insn target[] = {I(LOAD, 1, 0, 0), I(JALLF, 1, 3, 0), I(LOAD, 1, 1, 0), I(MOV, 0, 1, 0),
                        I(RET, 0, 0, 0)};
    expect_pass("fuse_load_move", target, LEN(target), k, 1, target, LEN(target));
    /* an arithmetic producer reading the destination */
    ba_insn arith[] = {I(LOAD, 0, 0, 0), I(ADD_I, 1, 0, 0), I(MOV, 0, 1, 0), I(RET, 0, 0, 0)};
    ba_insn arith_out[] = {I(LOAD, 0, 0, 0), I(ADD_I, 0, 0, 0), I(RET, 0, 0, 0)};
    expect_pass("fuse_load_move", arith, LEN(arith), k, 1, arith_out, LEN(arith_out));
    /* SELECT reads its destination: never a producer */
    ba_insn select[] = {I(LOAD, 1, 0, 0), I(SELECT, 1, 1, 1), I(MOV, 0, 1, 0), I(RET, 0, 0, 0)};
    expect_pass("fuse_load_move", select, LEN(select), k, 1, select, LEN(select));
}

static void test_remove_redundant_moves(void)
{
    int64_t k[] = {1};
    ba_insn in[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(MOV, 1, 0, 0), I(MOV, 0, 0, 0),
                    I(MOV, 0, 1, 0), I(RET, 0, 0, 0)};
    ba_insn out[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(RET, 0, 0, 0)};
    expect_pass("remove_redundant_moves", in, LEN(in), k, 1, out, LEN(out));
    /* a redefinition in between, or a jump target, makes the copy real */
    ba_insn redefined[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(LOAD, 1, 1, 0), I(MOV, 0, 1, 0),
                           I(RET, 0, 0, 0)};
    expect_pass("remove_redundant_moves", redefined, LEN(redefined), k, 1, redefined, LEN(redefined));
    ba_insn joined[] = {I(LOAD, 1, 0, 0), I(MOV, 0, 1, 0), I(JALLF, 1, 4, 0), I(LOAD, 0, 1, 0),
                        I(MOV, 0, 1, 0), I(RET, 0, 0, 0)};
    expect_pass("remove_redundant_moves", joined, LEN(joined), k, 1, joined, LEN(joined));
}

static void test_thread_jumps(void)
{
    int64_t k[] = {1};
    ba_insn chain[] = {I(LOAD, 0, 0, 0), I(JALLF, 0, 3, 0), I(LOAD, 1, 1, 0), I(JMP, 0, 5, 0),
                       I(LOAD, 1, 0, 0), I(RET, 1, 0, 0)};
    ba_insn chain_out[] = {I(LOAD, 0, 0, 0), I(JALLF, 0, 5, 0), I(LOAD, 1, 1, 0), I(JMP, 0, 5, 0),
                           I(LOAD, 1, 0, 0), I(RET, 1, 0, 0)};
    expect_pass("thread_jumps", chain, LEN(chain), k, 1, chain_out, LEN(chain_out));
    ba_insn to_next[] = {I(LOAD, 0, 0, 0), I(JNONET, 0, 2, 0), I(RET, 0, 0, 0)};
    ba_insn to_next_out[] = {I(LOAD, 0, 0, 0), I(RET, 0, 0, 0)};
    expect_pass("thread_jumps", to_next, LEN(to_next), k, 1, to_next_out, LEN(to_next_out));
    ba_insn same_test[] = {I(LOAD, 0, 0, 0), I(JALLT, 0, 3, 0), I(LOAD, 1, 0, 0),
                           I(JALLT, 0, 5, 0), I(LOAD, 1, 1, 0), I(RET, 0, 0, 0)};
    ba_insn same_test_out[] = {I(LOAD, 0, 0, 0), I(JALLT, 0, 5, 0), I(LOAD, 1, 0, 0),
                               I(JALLT, 0, 5, 0), I(LOAD, 1, 1, 0), I(RET, 0, 0, 0)};
    expect_pass("thread_jumps", same_test, LEN(same_test), k, 1, same_test_out, LEN(same_test_out));
    /* a different test on the same register is not followed */
    ba_insn other_test[] = {I(LOAD, 0, 0, 0), I(JALLT, 0, 3, 0), I(LOAD, 1, 0, 0),
                            I(JALLF, 0, 5, 0), I(LOAD, 1, 1, 0), I(RET, 0, 0, 0)};
    expect_pass("thread_jumps", other_test, LEN(other_test), k, 1, other_test, LEN(other_test));
}

static void test_remove_unreachable(void)
{
    int64_t k[] = {1};
    ba_insn in[] = {I(LOAD, 0, 0, 0), I(JMP, 0, 3, 0), I(LOAD, 1, 1, 0), I(RET, 0, 0, 0),
                    I(JALLF, 0, 6, 0), I(LOAD, 2, 0, 0), I(RET, 2, 0, 0)};
    ba_insn out[] = {I(LOAD, 0, 0, 0), I(JMP, 0, 2, 0), I(RET, 0, 0, 0)};
    expect_pass("remove_unreachable", in, LEN(in), k, 1, out, LEN(out));
}

static void test_remove_dead_code(void)
{
    int64_t k[] = {1};
    ba_insn in[] = {I(LOAD, 0, 0, 0), I(LOAD, 1, 1, 0), I(ADD_I, 2, 0, 1), I(LOADK, 3, 0, 0),
                    I(RET, 3, 0, 0)};
    ba_insn out[] = {I(LOADK, 3, 0, 0), I(RET, 3, 0, 0)};
    expect_pass("remove_dead_code", in, LEN(in), k, 1, out, LEN(out));
    /* r1 from pc 1 is live along the jump; SELECT keeps the rows it does not set */
    ba_insn jump[] = {I(LOAD, 0, 0, 0), I(LOAD, 1, 1, 0), I(JALLF, 0, 4, 0), I(LOAD, 1, 0, 0),
                      I(SELECT, 1, 0, 0), I(RET, 1, 0, 0)};
    expect_pass("remove_dead_code", jump, LEN(jump), k, 1, jump, LEN(jump));
}

static void test_optimize_all(void)
{
    fixture f;
    ba_opt_stats st;
    int64_t k[] = {1, 0};
    /* (x AND TRUE) OR FALSE with an unused NOT and NOPs: everything but one LOAD goes */
    ba_insn in[] = {I(NOP, 0, 0, 0), I(LOAD, 3, 0, 0), I(MOV, 0, 3, 0), I(LOADK, 1, 0, 0),
                    I(AND, 2, 0, 1), I(LOADK, 1, 1, 0), I(OR, 2, 2, 1), I(NOT, 3, 2, 0),
                    I(NOP, 0, 0, 0), I(RET, 2, 0, 0)};
    ba_program *p = load(&f, in, LEN(in), k, 2, 0, 4);
    CHECK(ba_optimize(p, ALL_PASSES, &st) == BA_OK);
    ba_insn out[] = {I(LOAD, 2, 0, 0), I(RET, 2, 0, 0)};
    CHECK(same_code(p, out, 2));
    CHECK(st.before == LEN(in) && st.after == 2 && st.verdict == BA_VERDICT_UNKNOWN);
    CHECK(st.rounds >= 2 && st.rounds <= BA_MAX_ROUNDS);
    int32_t total = 0;
    for (int i = 0; i < BA_NPASSES; i++)
        total += st.removed[i];
    CHECK(total == st.before - st.after);
    CHECK(st.removed[0] == 2);      /* the two NOPs */
    /* no passes: nothing changes, one round, verdict still computed */
    ba_insn zero_tick[] = {I(LOADK, 0, 0, 0), I(RET, 0, 0, 0)};
    p = load(&f, zero_tick, 2, k, 2, 0, 1);
    CHECK(ba_optimize(p, 0, &st) == BA_OK && same_code(p, zero_tick, 2));
    CHECK(st.rounds == 1 && st.verdict == BA_VERDICT_TRUE);
    ba_insn jumpy[] = {I(LOAD, 0, 0, 0), I(JALLF, 0, 3, 0), I(LOADK, 0, 0, 0), I(RET, 0, 0, 0)};
    p = load(&f, jumpy, 4, k, 2, 0, 1);
    CHECK(ba_optimize(p, ALL_PASSES, &st) == BA_OK && st.verdict == BA_VERDICT_UNKNOWN);
    CHECK(ba_optimize(p, ALL_PASSES, NULL) == BA_OK);
}

/* ---------------------------------------------------------------- random fuzz */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t next_u32(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(rng_state >> 33);
}

static int32_t below(int32_t n) { return (int32_t)(next_u32() % (uint32_t)n); }

static const int64_t WORDS[] = {0, 1, -1, 2, 7, 100, INT64_MIN, INT64_MAX,
                                0x7ff8000000000000, 0x7ff0000000000000, 0x4004000000000000,
                                (int64_t)0x8000000000000000u + 1};

/* A valid program of n instructions with random operands of the right kinds. */
static ba_program *random_program(fixture *f, int32_t n)
{
    int64_t k[8];
    int32_t nconst = below(8), nregs = 1 + below(6);
    for (int32_t i = 0; i < nconst; i++)
        k[i] = WORDS[below(LEN(WORDS))];
    ba_program *p = load(f, f->code, 0, k, nconst, next_u32() & 0x15u, nregs);
    p->kcap = nconst + below(3);      /* sometimes full */
    for (int32_t pc = 0; pc < n - 1; pc++) {
        ba_insn *in = &f->code[pc];
        int32_t *operand[3] = {&in->a, &in->b, &in->c};
        bool ok;
        do {
            in->op = below(BA_OP_COUNT);
            ok = true;
            for (int i = 0; i < 3; i++) {
                switch (ba_optable[in->op].kind[i]) {
                case BA_KIND_R: *operand[i] = below(nregs); break;
                case BA_KIND_K: ok &= nconst > 0; *operand[i] = nconst ? below(nconst) : 0; break;
                case BA_KIND_C: *operand[i] = below(NCOLS); break;
                case BA_KIND_L: *operand[i] = below(NLUTS); break;
                case BA_KIND_J: *operand[i] = pc + 1 + below(n - pc - 1); break;
                case BA_KIND_N: *operand[i] = below(41) - 20; break;
                default: *operand[i] = 0;
                }
            }
        } while (!ok);
    }
    f->code[n - 1] = (ba_insn){BA_OP_RET, below(nregs), 0, 0};
    p->ncode = n;
    return p;
}

/* ------------------------------------------------- fuzz: semantic equivalence */

static int64_t random_word(void)
{
    return (int64_t)((uint64_t)next_u32() << 32 | next_u32());
}

/* Integers where arithmetic and narrowing have their edges. */
static const int64_t INT_EDGES[] = {
    0, 1, -1, 2, -2, 3, 7, -7, 10, 100, 127, 128, -128, -129, 255, 256, 32767, -32769, 65535,
    65536, 2147483647, -2147483648, 2147483648, 4294967295, 4294967296, 3037000499,
    3037000500, -3037000500, (int64_t)1 << 62, -((int64_t)1 << 62), INT64_MIN, INT64_MIN + 1,
    INT64_MAX, INT64_MAX - 1, 5000000000000000000, -5000000000000000000,
};

/* Floats where rounding, conversion and DuckDB's order have theirs. */
static const double FLOAT_EDGES[] = {0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.1, 1.0, -1.0, 3.0,
    1e300, -1e300, 1e-300, 4.9e-324, 9.2233720368547758e18, -9.2233720368547758e18, 9.3e18,
    9223372036854774784.0, 4503599627370497.0, 1234.5, 0.125, NAN, -NAN, INFINITY, -INFINITY};

/* Typed programs: the ISA's registers hold int64s, float64s or booleans (0/1),
 * and the optimizer may rely on that (AND(TRUE, x) becomes x: the same only for
 * a boolean x). Each register here has one type for the whole program, so any
 * path through the jumps reads it with that type; the columns are typed too. */
enum type { T_INT, T_FLOAT, T_BOOL, T_ANY };
static const enum type COLUMN_TYPE[NCOLS] = {T_INT, T_FLOAT, T_BOOL};

static int64_t random_int(void)
{
    int32_t roll = below(4);
    return roll < 2 ? INT_EDGES[below(LEN(INT_EDGES))] : roll < 3 ? below(41) - 20 : random_word();
}

static int64_t random_float(void)
{
    int32_t roll = below(8);
    if (roll < 4)
        return bits_of(FLOAT_EDGES[below(LEN(FLOAT_EDGES))]);
    if (roll < 7)
        return bits_of((below(4001) - 2000) / 8.0);
    return random_word();   /* any bits: NaN payloads, subnormals */
}

static int64_t random_of(enum type t)
{
    return t == T_INT ? random_int() : t == T_FLOAT ? random_float() : below(2);
}

static void random_dataset(dataset *d)
{
    int32_t null_per_8 = below(4);    /* none, 1/8, 2/8 or 3/8 of the cells */
    d->nrows = 1 + below(INTERP_MAX_ROWS);
    for (int c = 0; c < NCOLS; c++)
        for (int32_t i = 0; i < d->nrows; i++)
            d->col[c][i] = below(8) < null_per_8 ? CELL_NULL : cell_int(random_of(COLUMN_TYPE[c]));
    for (int t = 0; t < NLUTS; t++) {
        d->lut_len[t] = 1 + below(INTERP_MAX_LUT);
        for (int32_t i = 0; i < d->lut_len[t]; i++)
            d->lut[t][i] = below(4) ? cell_bool(below(2)) : CELL_NULL;
    }
}

/* An opcode, the type it writes (or tests) and the types of its B and C. */
typedef struct { int32_t op; enum type out, b, c; int32_t weight; } typed_op;

static const typed_op TYPED_OPS[] = {
    {BA_OP_LOAD, T_ANY, T_ANY, T_ANY, 4}, {BA_OP_LOADK, T_ANY, T_ANY, T_ANY, 10},
    {BA_OP_MOV, T_ANY, T_ANY, T_ANY, 4}, {BA_OP_COALESCE, T_ANY, T_ANY, T_ANY, 2},
    {BA_OP_SELECT, T_ANY, T_BOOL, T_ANY, 3},
    {BA_OP_ADD_I, T_INT, T_INT, T_INT, 2}, {BA_OP_SUB_I, T_INT, T_INT, T_INT, 2},
    {BA_OP_MUL_I, T_INT, T_INT, T_INT, 2}, {BA_OP_IDIV_I, T_INT, T_INT, T_INT, 1},
    {BA_OP_MOD_I, T_INT, T_INT, T_INT, 1}, {BA_OP_NEG_I, T_INT, T_INT, T_ANY, 1},
    {BA_OP_ABS_I, T_INT, T_INT, T_ANY, 1}, {BA_OP_ROUND_I, T_INT, T_INT, T_ANY, 1},
    {BA_OP_NARROW_I, T_INT, T_INT, T_ANY, 2}, {BA_OP_F2I, T_INT, T_FLOAT, T_ANY, 1},
    {BA_OP_ADD_F, T_FLOAT, T_FLOAT, T_FLOAT, 1}, {BA_OP_SUB_F, T_FLOAT, T_FLOAT, T_FLOAT, 1},
    {BA_OP_MUL_F, T_FLOAT, T_FLOAT, T_FLOAT, 1}, {BA_OP_DIV_F, T_FLOAT, T_FLOAT, T_FLOAT, 1},
    {BA_OP_MOD_F, T_FLOAT, T_FLOAT, T_FLOAT, 1}, {BA_OP_NEG_F, T_FLOAT, T_FLOAT, T_ANY, 1},
    {BA_OP_ABS_F, T_FLOAT, T_FLOAT, T_ANY, 1}, {BA_OP_ROUND_F, T_FLOAT, T_FLOAT, T_ANY, 1},
    {BA_OP_I2F, T_FLOAT, T_INT, T_ANY, 1}, {BA_OP_F2S, T_FLOAT, T_FLOAT, T_ANY, 1},
    {BA_OP_EQ_I, T_BOOL, T_INT, T_INT, 1}, {BA_OP_NE_I, T_BOOL, T_INT, T_INT, 1},
    {BA_OP_LT_I, T_BOOL, T_INT, T_INT, 1}, {BA_OP_LE_I, T_BOOL, T_INT, T_INT, 1},
    {BA_OP_GT_I, T_BOOL, T_INT, T_INT, 1}, {BA_OP_GE_I, T_BOOL, T_INT, T_INT, 1},
    {BA_OP_EQ_F, T_BOOL, T_FLOAT, T_FLOAT, 1}, {BA_OP_NE_F, T_BOOL, T_FLOAT, T_FLOAT, 1},
    {BA_OP_LT_F, T_BOOL, T_FLOAT, T_FLOAT, 1}, {BA_OP_LE_F, T_BOOL, T_FLOAT, T_FLOAT, 1},
    {BA_OP_GT_F, T_BOOL, T_FLOAT, T_FLOAT, 1}, {BA_OP_GE_F, T_BOOL, T_FLOAT, T_FLOAT, 1},
    {BA_OP_NOT, T_BOOL, T_BOOL, T_ANY, 2}, {BA_OP_AND, T_BOOL, T_BOOL, T_BOOL, 4},
    {BA_OP_OR, T_BOOL, T_BOOL, T_BOOL, 4}, {BA_OP_ISNULL, T_BOOL, T_ANY, T_ANY, 1},
    {BA_OP_NOTNULL, T_BOOL, T_ANY, T_ANY, 1}, {BA_OP_LUT, T_BOOL, T_INT, T_ANY, 2},
    {BA_OP_NOP, T_ANY, T_ANY, T_ANY, 1}, {BA_OP_JMP, T_ANY, T_ANY, T_ANY, 1},
    {BA_OP_JALLF, T_BOOL, T_ANY, T_ANY, 2}, {BA_OP_JALLT, T_BOOL, T_ANY, T_ANY, 2},
    {BA_OP_JNONET, T_BOOL, T_ANY, T_ANY, 2}, {BA_OP_RET, T_BOOL, T_ANY, T_ANY, 1},
};

/* TYPED_OPS lists every opcode once, with the classes opcodes.def gives it: a
 * concrete class there (i, f, b) is the type here; "x" may be any type here. */
static void test_typed_ops_follow_the_table(void)
{
    int seen[BA_OP_COUNT] = {0};
    for (int32_t i = 0; i < LEN(TYPED_OPS); i++) {
        const typed_op *t = &TYPED_OPS[i];
        const char *classes = ba_optable[t->op].classes;
        const enum type types[3] = {t->out, t->b, t->c};
        seen[t->op]++;
        for (int j = 0; j < 3; j++) {
            char want = types[j] == T_INT ? 'i' : types[j] == T_FLOAT ? 'f' : types[j] == T_BOOL ? 'b' : 0;
            CHECK(want ? classes[j] == want || classes[j] == 'x' : strchr("x_", classes[j]) != NULL);
            if (want && !(classes[j] == want || classes[j] == 'x'))
                fprintf(stderr, "  TYPED_OPS: %s operand %d is '%c' in opcodes.def\n",
                        ba_op_name(t->op), j, classes[j]);
        }
    }
    for (int op = 0; op < BA_OP_COUNT; op++) {
        CHECK(seen[op] == 1);
        if (seen[op] != 1)
            fprintf(stderr, "  TYPED_OPS lists %s %d times\n", ba_op_name(op), seen[op]);
    }
}

typedef struct {
    int32_t nregs, nconst;
    enum type reg[8], konst[12];
} typing;

/* A register of type t (T_ANY: any register), or -1 if there is none. */
static int32_t reg_of(const typing *ty, enum type t)
{
    int32_t pick[8], n = 0;
    for (int32_t r = 0; r < ty->nregs; r++)
        if (t == T_ANY || ty->reg[r] == t)
            pick[n++] = r;
    return n ? pick[below(n)] : -1;
}

static int32_t const_of(const typing *ty, enum type t)
{
    int32_t pick[12], n = 0;
    for (int32_t k = 0; k < ty->nconst; k++)
        if (ty->konst[k] == t)
            pick[n++] = k;
    return n ? pick[below(n)] : -1;
}

static bool is_jump_op(int32_t op) { return ba_optable[op].kind[1] == BA_KIND_J; }

/* Instruction pc of an n-instruction program, or false when the opcode drawn
 * has no operands of its types here (the caller draws again). */
static bool typed_insn(const typing *ty, int32_t pc, int32_t n, ba_insn *in)
{
    static int32_t total;
    if (!total)
        for (int32_t i = 0; i < LEN(TYPED_OPS); i++)
            total += TYPED_OPS[i].weight;
    int32_t roll = below(total);
    const typed_op *t = TYPED_OPS;
    while (roll >= t->weight)
        roll -= t++->weight;
    const signed char *kind = ba_optable[t->op].kind;
    if (is_jump_op(t->op) && pc + 1 >= n)
        return false;
    ba_insn out = {t->op, 0, 0, 0};
    /* the destination (or tested register) first: its type decides the inputs' */
    if (kind[0] == BA_KIND_R && (out.a = reg_of(ty, t->out)) < 0)
        return false;
    enum type at = ty->reg[out.a];
    switch (t->op) {
    case BA_OP_LOAD:
        out.b = at == T_INT ? 0 : at == T_FLOAT ? 1 : 2;
        break;
    case BA_OP_LOADK:
        out.b = const_of(ty, at);
        break;
    case BA_OP_MOV:
        out.b = reg_of(ty, at);
        break;
    case BA_OP_COALESCE: case BA_OP_SELECT:
        out.b = reg_of(ty, t->op == BA_OP_SELECT ? T_BOOL : at);
        out.c = reg_of(ty, at);
        break;
    default:
        if (is_jump_op(t->op))
            out.b = pc + 1 + below(n - pc - 1);
        else if (kind[1] == BA_KIND_R)
            out.b = reg_of(ty, t->b);
        if (kind[2] == BA_KIND_R)
            out.c = reg_of(ty, t->c);
        else if (kind[2] == BA_KIND_L)
            out.c = below(NLUTS);
        else if (kind[2] == BA_KIND_N)   /* NARROW_I: mostly the types of enum ba_int */
            out.c = t->op == BA_OP_NARROW_I && below(8) ? below(BA_INT_U64 + 1) : below(45) - 22;
    }
    if (out.b < 0 || out.c < (kind[2] == BA_KIND_N ? INT32_MIN : 0))
        return false;
    *in = out;
    return true;
}

/* A valid, well-typed program; the verdict is a boolean register. */
static ba_program *random_typed_program(fixture *f, int32_t n)
{
    typing ty;
    ty.nregs = 2 + below(6);
    for (int32_t r = 0; r < ty.nregs; r++)
        ty.reg[r] = r == 0 ? T_BOOL : (enum type)below(3);
    int64_t k[12];
    uint32_t nulls = 0;
    ty.nconst = 6 + below(7);
    for (int32_t i = 0; i < ty.nconst; i++) {
        ty.konst[i] = (enum type)(i % 3);      /* every type has constants */
        k[i] = random_of(ty.konst[i]);
        if (!below(6))
            nulls |= 1u << i;
    }
    ba_program *p = load(f, f->code, 0, k, ty.nconst, nulls, ty.nregs);
    for (int32_t pc = 0; pc < n - 1; pc++)
        while (!typed_insn(&ty, pc, n, &f->code[pc]))
            ;
    f->code[n - 1] = (ba_insn){BA_OP_RET, reg_of(&ty, T_BOOL), 0, 0};
    p->ncode = n;
    return p;
}

static bool same_cell(cell x, cell y)
{
    return x.valid == y.valid && (!x.valid || x.word == y.word);
}

static void print_program(const char *title, const ba_program *p)
{
    fprintf(stderr, "  %s (%d registers):\n", title, p->nregs);
    for (int32_t pc = 0; pc < p->ncode; pc++) {
        const ba_insn *in = &p->code[pc];
        fprintf(stderr, "    %2d %-8s %d %d %d", pc, ba_op_name(in->op), in->a, in->b, in->c);
        if (in->op == BA_OP_LOADK)
            fprintf(stderr, "    ; %s %lld", p->kvalid[in->b] ? "" : "NULL",
                    (long long)p->kval[in->b]);
        fprintf(stderr, "\n");
    }
}

static void print_dataset(const dataset *d)
{
    for (int c = 0; c < NCOLS; c++) {
        fprintf(stderr, "  column %d:", c);
        for (int32_t i = 0; i < d->nrows; i++)
            if (d->col[c][i].valid)
                fprintf(stderr, " %lld", (long long)d->col[c][i].word);
            else
                fprintf(stderr, " NULL");
        fprintf(stderr, "\n");
    }
}

/* The same verdict on every row, before and after optimization (random passes),
 * and the zero-tick verdict, when there is one, on every row. */
static int fuzz_failures;

static void check_same_meaning(const fixture *before, fixture *after, uint32_t mask)
{
    ba_opt_stats st;
    CHECK(ba_optimize(&after->p, mask, &st) == BA_OK);
    for (int trial = 0; trial < 4; trial++) {
        dataset d;
        cell want[INTERP_MAX_ROWS], got[INTERP_MAX_ROWS];
        random_dataset(&d);
        CHECK(interp_run(&before->p, &d, want) == 0 && interp_run(&after->p, &d, got) == 0);
        bool same = true;
        for (int32_t i = 0; i < d.nrows; i++) {
            same &= same_cell(want[i], got[i]);
            if (st.verdict != BA_VERDICT_UNKNOWN)
                same &= st.verdict == BA_VERDICT_NULL ? !want[i].valid
                      : want[i].valid && (want[i].word != 0) == (st.verdict == BA_VERDICT_TRUE);
        }
        CHECK(same);
        if (!same && fuzz_failures++ < 3) {
            fprintf(stderr, "  passes 0x%x, verdict %d; rows (want / got):", mask, st.verdict);
            for (int32_t i = 0; i < d.nrows; i++)
                fprintf(stderr, " %s%lld/%s%lld", want[i].valid ? "" : "NULL:",
                        (long long)want[i].word, got[i].valid ? "" : "NULL:", (long long)got[i].word);
            fprintf(stderr, "\n");
            print_dataset(&d);
            print_program("before", &before->p);
            print_program("after", &after->p);
        }
    }
}

static void test_optimized_programs_keep_their_meaning(int iterations)
{
    static fixture before, after;
    int32_t changed = 0, folded_null = 0, zero_tick = 0;
    for (int i = 0; i < iterations; i++) {
        random_typed_program(&before, 2 + below(CAP - 2));
        after = before;                       /* the copy must point at its own arrays */
        after.p.code = after.code;
        after.p.kval = after.kval;
        after.p.kvalid = after.kvalid;
        uint32_t mask = below(4) ? ALL_PASSES : next_u32() & ALL_PASSES;
        int32_t nconst = before.p.nconst;
        check_same_meaning(&before, &after, mask);
        changed += after.p.ncode < before.p.ncode;
        for (int32_t k = nconst; k < after.p.nconst; k++)
            folded_null += !after.kvalid[k];
        ba_opt_stats st;
        ba_optimize(&after.p, 0, &st);
        zero_tick += st.verdict != BA_VERDICT_UNKNOWN;
    }
    /* the generator gives every pass work: most programs shrink, some folds add a
     * NULL constant to the pool (overflow, NARROW_I, NULL inputs) */
    CHECK(iterations < 1000 || changed > iterations / 2);
    CHECK(iterations < 1000 || folded_null > iterations / 200);
    CHECK(iterations < 1000 || zero_tick > iterations / 20);
    printf("semantic fuzz: %d programs x 4 datasets, %d shrunk, %d zero-tick, "
           "%d NULL constants added by folds\n", iterations, changed, zero_tick, folded_null);
}

/* Every fold of an opcode on edge constants is what the interpreter computes. */
static void test_folds_match_the_interpreter(void)
{
    enum { NWORDS = LEN(INT_EDGES) + LEN(FLOAT_EDGES) + 1 };
    int64_t words[NWORDS];
    for (int32_t i = 0; i < LEN(INT_EDGES); i++)
        words[i] = INT_EDGES[i];
    for (int32_t i = 0; i < LEN(FLOAT_EDGES); i++)
        words[LEN(INT_EDGES) + i] = bits_of(FLOAT_EDGES[i]);
    words[NWORDS - 1] = (int64_t)0xfff8000000000123u;    /* a NaN with sign and payload */
    int32_t folded = 0;
    static const int32_t imms[] = {-22, -19, -18, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 400, -400};
    for (int32_t op = 0; op < BA_OP_COUNT; op++) {
        const signed char *kind = ba_optable[op].kind;
        if (kind[0] != BA_KIND_R || kind[1] != BA_KIND_R || op == BA_OP_SELECT
            || op == BA_OP_LUT || op == BA_OP_MOV)
            continue;
        int32_t nimm = kind[2] == BA_KIND_N ? LEN(imms) : 1;
        int32_t nc = kind[2] == BA_KIND_R ? NWORDS + 1 : 1;
        for (int32_t ib = 0; ib <= NWORDS; ib++)
            for (int32_t ic = 0; ic < nc; ic++)
                for (int32_t ii = 0; ii < nimm; ii++) {
                    fixture f;
                    int64_t k[] = {ib < NWORDS ? words[ib] : 0, ic < NWORDS ? words[ic] : 0};
                    uint32_t nulls = (ib == NWORDS) | (ic == NWORDS) << 1;
                    int32_t c = kind[2] == BA_KIND_R ? 1 : kind[2] == BA_KIND_N ? imms[ii] : 0;
                    ba_insn in[] = {I(LOADK, 0, 0, 0), I(LOADK, 1, 1, 0), {op, 2, 0, c},
                                    I(RET, 2, 0, 0)};
                    ba_program *p = load(&f, in, 4, k, 2, nulls, 3);
                    cell want = interp_scalar(op, p->kvalid[0] ? cell_int(k[0]) : CELL_NULL,
                                              p->kvalid[1] ? cell_int(k[1]) : CELL_NULL, c);
                    CHECK(ba_optimize(p, pass_bit("fold_constants"), NULL) == BA_OK);
                    if (p->code[2].op != BA_OP_LOADK)
                        continue;     /* left to the VM (ROUND_I overflow, unknown types) */
                    folded++;
                    int32_t at = p->code[2].b;
                    cell got = p->kvalid[at] ? cell_int(p->kval[at]) : CELL_NULL;
                    CHECK(same_cell(want, got));
                    if (!same_cell(want, got))
                        fprintf(stderr, "  %s(%lld, %lld; %d): fold %s%lld, interpreter %s%lld\n",
                                ba_op_name(op), (long long)k[0], (long long)k[1], c,
                                got.valid ? "" : "NULL:", (long long)got.word,
                                want.valid ? "" : "NULL:", (long long)want.word);
                }
    }
    CHECK(folded > 10000);
}

static void test_random_programs(void)
{
    fixture f;
    ba_opt_stats st;
    for (int i = 0; i < 20000; i++) {
        ba_program *p = random_program(&f, 1 + below(CAP - 1));
        int32_t kcap = p->kcap;
        CHECK(ba_validate(p) == BA_OK);
        CHECK(ba_optimize(p, next_u32() & ALL_PASSES, &st) == BA_OK);
        CHECK(ba_validate(p) == BA_OK);
        CHECK(p->nconst <= kcap && p->ncode == st.after);
        int32_t total = 0;
        for (int j = 0; j < BA_NPASSES; j++)
            total += st.removed[j];
        CHECK(total == st.before - st.after);
    }
    /* garbage: validation rejects or accepts, and never reads out of bounds */
    for (int i = 0; i < 20000; i++) {
        int32_t n = 1 + below(8);
        int32_t *words = &f.code[0].op;
        for (int32_t w = 0; w < 4 * n; w++)
            words[w] = below(4) ? below(12) - 2 : (int32_t)next_u32();
        f.p = (ba_program){f.code, n, f.kval, f.kvalid, below(3), 3, below(4), below(3), below(3)};
        if (ba_validate(&f.p) == BA_OK)
            CHECK(ba_optimize(&f.p, ALL_PASSES, NULL) == BA_OK && ba_validate(&f.p) == BA_OK);
    }
}

int main(void)
{
    test_validate();
    test_tables();
    test_typed_ops_follow_the_table();
    test_remove_nops();
    test_fold_semantics();
    test_fold_narrow();
    test_fold_logic_and_nulls();
    test_fold_control();
    test_fold_constant_pool();
    test_fuse_load_move();
    test_remove_redundant_moves();
    test_thread_jumps();
    test_remove_unreachable();
    test_remove_dead_code();
    test_optimize_all();
    test_random_programs();
    test_folds_match_the_interpreter();
    /* BA_FUZZ=n programs (default 20000), BA_FUZZ_SEED=s for another sequence */
    const char *fuzz = getenv("BA_FUZZ"), *seed = getenv("BA_FUZZ_SEED");
    if (seed)
        rng_state ^= strtoull(seed, NULL, 10) * 0x9e3779b97f4a7c15u;
    test_optimized_programs_keep_their_meaning(fuzz ? atoi(fuzz) : 20000);
    return check_report("test_optimizer");
}
