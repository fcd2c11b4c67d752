/* bytecode.c -- the opcode table and its accessors, generated from opcodes.def. */
#include "bytecode.h"

/* opcodes.def writes its FLAGS column as F(JUMP) | F(FOLDABLE). */
#define F(flag) BA_OPF_##flag

const ba_opinfo ba_optable[BA_OP_COUNT] = {
#define OP(name, a, b, c, family, classes, symbol, flags, doc) \
    {#name, doc, #family, #classes, symbol, (flags), {BA_KIND_##a, BA_KIND_##b, BA_KIND_##c}},
#include "opcodes.def"
#undef OP
};

/*
 * What the flags promise about the operand kinds, checked for every row when this
 * file compiles (C99 has no static_assert: an array of negative size is the error;
 * the row's name is in the typedef's). tests/test_opcode_table.py checks the rest:
 * classes, symbols, and the flags against the ISA interpreter's semantics.
 */
#define IMPLIES(p, q) (!(p) || (q))
#define HAS(flags, flag) (((flags) & BA_OPF_##flag) != 0)
#define NULL_FLAGS(flags) (HAS(flags, NULL_PROPAGATING) + HAS(flags, NEVER_NULL) \
                           + (HAS(flags, OVERFLOW) || HAS(flags, DIVZERO)))
#define OP(name, a, b, c, family, classes, symbol, flags, doc)                               \
    typedef char flags_agree_with_kinds_##name[                                              \
        HAS(flags, JUMP) == (BA_KIND_##b == BA_KIND_J)                                       \
        && IMPLIES(HAS(flags, READS_A), BA_KIND_##a == BA_KIND_R)                            \
        && IMPLIES(HAS(flags, FOLDABLE), BA_KIND_##a == BA_KIND_R && BA_KIND_##b == BA_KIND_R \
                   && !HAS(flags, READS_A) && !HAS(flags, JUMP) && !HAS(flags, TERMINATOR))  \
        && IMPLIES(HAS(flags, COMPARISON), BA_KIND_##b == BA_KIND_R && BA_KIND_##c == BA_KIND_R) \
        && IMPLIES(HAS(flags, DIVZERO), BA_KIND_##c == BA_KIND_R)                           \
        && IMPLIES(NULL_FLAGS(flags) > 0, BA_KIND_##a == BA_KIND_R && BA_KIND_##b == BA_KIND_R \
                   && !HAS(flags, READS_A))                                                  \
        && NULL_FLAGS(flags) <= 1                                                            \
        ? 1 : -1];
#include "opcodes.def"
#undef OP
#undef NULL_FLAGS
#undef HAS
#undef IMPLIES
#undef F

int ba_op_count(void) { return BA_OP_COUNT; }

static const ba_opinfo *info(int op) { return op >= 0 && op < BA_OP_COUNT ? &ba_optable[op] : NULL; }

const char *ba_op_name(int op) { return info(op) ? info(op)->name : NULL; }

const char *ba_op_doc(int op) { return info(op) ? info(op)->doc : NULL; }

const char *ba_op_family(int op) { return info(op) ? info(op)->family : NULL; }

const char *ba_op_classes(int op) { return info(op) ? info(op)->classes : NULL; }

const char *ba_op_symbol(int op) { return info(op) ? info(op)->symbol : NULL; }

int ba_op_flags(int op) { return info(op) ? (int)info(op)->flags : -1; }

int ba_op_kind(int op, int operand)
{
    if (!info(op) || operand < 0 || operand > 2)
        return -1;
    return ba_optable[op].kind[operand];
}
