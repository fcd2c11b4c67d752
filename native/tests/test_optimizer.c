/* test_optimizer.c -- validation, opcode tables and each optimizer pass. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../bytecode.h"
#include "check.h"

#define I(op, a, b, c) {BA_OP_##op, a, b, c}
#define LEN(x) ((int32_t)(sizeof(x) / sizeof((x)[0])))
#define ALL_PASSES ((1u << BA_NPASSES) - 1)

enum { CAP = 64, NCOLS = 2, NLUTS = 2 };

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
    expect_fold(BA_OP_ADD_I, INT64_MAX, 1, 0, true, INT64_MIN);
    expect_fold(BA_OP_MUL_I, INT64_MIN, -1, 0, true, INT64_MIN);
    expect_fold(BA_OP_IDIV_I, INT64_MIN, -1, 0, true, INT64_MIN);
    expect_fold(BA_OP_IDIV_I, -7, 2, 0, true, -3);
    expect_fold(BA_OP_IDIV_I, 7, 0, 0, false, 0);
    expect_fold(BA_OP_MOD_I, -7, 2, 0, true, -1);
    expect_fold(BA_OP_MOD_I, INT64_MIN, -1, 0, true, 0);
    expect_fold(BA_OP_MOD_I, 7, 0, 0, false, 0);
    expect_fold(BA_OP_NEG_I, INT64_MIN, 0, 0, true, INT64_MIN);
    expect_fold(BA_OP_ABS_I, -5, 0, 0, true, 5);
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
    test_remove_nops();
    test_fold_semantics();
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
    return check_report("test_optimizer");
}
