/*
 * bytecode.h -- the instruction set, generated from opcodes.def (X-macro).
 *
 * An instruction is four signed 32-bit words (ba_insn, declared in the public
 * header batchaot_native.h so that cffi sees it):
 *
 *      0        4        8        12       16 bytes
 *      +--------+--------+--------+--------+
 *      |   op   |   A    |   B    |   C    |
 *      +--------+--------+--------+--------+
 *
 *   op  an opcode (enum ba_op, the row number in opcodes.def)
 *   A   usually the destination register; the tested register of a conditional
 *       jump; the verdict register of RET
 *   B   first source: register, constant index, column index or jump target
 *   C   second source: register, lut index or immediate
 *
 * What each operand means is the opcode's kind letter in opcodes.def
 * (ba_op_kind): R register, K constant, C column, J jump target, L lut,
 * N immediate, _ unused (must be 0). Jumps only go forward (pc < target < ncode)
 * and the last instruction is RET, so every program terminates.
 *
 * Beside the kinds, each row of ba_optable carries its family, the physical
 * classes of its registers, its operator symbol and its flags (enum ba_opflag in
 * batchaot_native.h): code that needs to know "is this a jump, a comparison,
 * can it overflow" asks the table, never a list of opcodes.
 */
#ifndef BATCHAOT_BYTECODE_H
#define BATCHAOT_BYTECODE_H

#include "batchaot_native.h"

enum ba_op {
#define OP(name, a, b, c, family, classes, symbol, flags, doc) BA_OP_##name,
#include "opcodes.def"
#undef OP
    BA_OP_COUNT
};

/* opcodes.def writes the unused kind as "_"; token pasting makes BA_KIND__. */
#define BA_KIND__ BA_KIND_NONE

typedef struct {
    const char *name;
    const char *doc;       /* the semantics, in register notation */
    const char *family;    /* "add", "lt", ...: the same for ADD_I and ADD_F */
    const char *classes;   /* physical classes of A, B, C: "iii", "bff", "xbx", "b__" */
    const char *symbol;    /* "+", "<", ... or "" */
    unsigned flags;        /* enum ba_opflag bits */
    signed char kind[3];   /* enum ba_kind of A, B, C */
} ba_opinfo;

/* One row per opcode, indexed by enum ba_op (bytecode.c). */
extern const ba_opinfo ba_optable[BA_OP_COUNT];

#endif /* BATCHAOT_BYTECODE_H */
