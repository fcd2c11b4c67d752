/* bytecode.c -- the opcode table and its accessors, generated from opcodes.def. */
#include "bytecode.h"

const ba_opinfo ba_optable[BA_OP_COUNT] = {
#define OP(name, a, b, c, doc) {#name, doc, {BA_KIND_##a, BA_KIND_##b, BA_KIND_##c}},
#include "opcodes.def"
#undef OP
};

int ba_op_count(void) { return BA_OP_COUNT; }

const char *ba_op_name(int op)
{
    return op >= 0 && op < BA_OP_COUNT ? ba_optable[op].name : NULL;
}

const char *ba_op_doc(int op)
{
    return op >= 0 && op < BA_OP_COUNT ? ba_optable[op].doc : NULL;
}

int ba_op_kind(int op, int operand)
{
    if (op < 0 || op >= BA_OP_COUNT || operand < 0 || operand > 2)
        return -1;
    return ba_optable[op].kind[operand];
}
