/* check.h -- the whole test framework: CHECK counts failures and goes on. */
#ifndef BATCHAOT_CHECK_H
#define BATCHAOT_CHECK_H

#include <stdio.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                          \
    do {                                                                     \
        check_count++;                                                       \
        if (!(cond)) {                                                       \
            check_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
                    #cond);                                                  \
        }                                                                    \
    } while (0)

/* Prints a summary; the process exit status is non-zero on any failure. */
static int check_report(const char *suite)
{
    printf("%s: %d checks, %d failed\n", suite, check_count, check_failures);
    return check_failures != 0;
}

#endif /* BATCHAOT_CHECK_H */
