/* Included by one file of a Criterion test program whose suites run on either store: when
 * HX_TEST_STORE=postgres (or always, when the file defines HX_PGTEST_ALWAYS to 1 first: a suite
 * of the PostgreSQL store itself), the runner starts one PostgreSQL server (hx_pgtest) before the
 * tests and stops it after; each test's processes find it in HX_TEST_PG_URL (or why it did
 * not start in HX_TEST_PG_ERROR), and take a database of their own (hx_pgtest_store_url). */
#ifndef HX_PGTEST_HOOKS_H
#define HX_PGTEST_HOOKS_H
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdlib.h>

#include "hx_pgtest.h"

#ifndef HX_PGTEST_ALWAYS
#define HX_PGTEST_ALWAYS 0
#endif

static hx_pgtest_t hx_pgtest_server;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (!HX_PGTEST_ALWAYS && !hx_pgtest_wanted())
        return;
    char why[2048];
    if (hx_pgtest_start(&hx_pgtest_server, why, sizeof why) == 0)
        setenv("HX_TEST_PG_URL", hx_pgtest_server.url, 1);
    else
        setenv("HX_TEST_PG_ERROR", why, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    if (HX_PGTEST_ALWAYS || hx_pgtest_wanted())
        hx_pgtest_destroy(&hx_pgtest_server);
}

#endif
