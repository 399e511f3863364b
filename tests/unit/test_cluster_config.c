/* Unit: --cluster's nodes as handoff-broker reads them (hx_cluster_parse): ids from 1, Raft
 * addresses HOST:PORT, client endpoints tcp://HOST:PORT, no two nodes alike, at most 7; each
 * refusal names the element and what is wrong. And a node id not among them is refused at
 * start, before anything is written. And the audit heads the replicated state keeps, at most
 * so many nodes', forgetting the least recently recorded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "hx_cluster.h"
#include "hx_cluster_internal.h"

Test(cluster_config, three_nodes_are_read_in_order)
{
    hx_cluster_config_t cfg = {0};
    char why[300];
    cr_assert_eq(hx_cluster_parse("1=10.0.0.1:7001=tcp://10.0.0.1:5555,2=10.0.0.2:7001=tcp://10.0.0.2:5555,"
                                  "3=10.0.0.3:7001=tcp://node-3.internal:5555",
                                  &cfg, why, sizeof why), 0, "%s", why);
    cr_assert_eq(cfg.n_nodes, 3);
    cr_expect_eq(cfg.nodes[0].id, 1);
    cr_expect_str_eq(cfg.nodes[1].raft, "10.0.0.2:7001");
    cr_expect_str_eq(cfg.nodes[2].client, "tcp://node-3.internal:5555");
}

Test(cluster_config, each_refusal_names_the_element)
{
    static const struct {
        const char *spec, *want;
    } bad[] = {
        {"", "empty"},
        {"1=10.0.0.1:7001", "'1=10.0.0.1:7001': not ID=RAFTIP:PORT=tcp://HOST:PORT"},
        {"1=node-1.internal:7001=tcp://a:2", "node 1: 'node-1.internal:7001': the Raft address is IPV4:PORT (the Raft "
                                             "library takes no host names"},
        {"0=10.0.0.1:1=tcp://a:2", "the node id is a number from 1"},
        {"x=10.0.0.1:1=tcp://a:2", "'x': the node id is a number from 1"},
        {"1=a=tcp://a:2", "node 1: 'a': the Raft address is IPV4:PORT"},
        {"1=10.0.0.1:99999=tcp://a:2", "node 1: '10.0.0.1:99999': the Raft address is IPV4:PORT"},
        {"1=10.0.0.1:1=udp://a:2", "node 1: 'udp://a:2': the client endpoint is tcp://HOST:PORT"},
        {"1=10.0.0.1:1=tcp://a:2,1=10.0.0.2:1=tcp://b:2", "node 1: its id or an address is another node's too"},
        {"1=10.0.0.1:1=tcp://a:2,2=10.0.0.1:1=tcp://b:2", "node 2: its id or an address is another node's too"},
        {"1=10.0.0.1:1=tcp://a:1,2=10.0.0.2:1=tcp://b:1,3=10.0.0.3:1=tcp://c:1,4=10.0.0.4:1=tcp://d:1,"
         "5=10.0.0.5:1=tcp://e:1,6=10.0.0.6:1=tcp://f:1,7=10.0.0.7:1=tcp://g:1,8=10.0.0.8:1=tcp://h:1",
         "more than 7 nodes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hx_cluster_config_t cfg = {0};
        char why[300] = "";
        cr_expect_eq(hx_cluster_parse(bad[i].spec, &cfg, why, sizeof why), -1, "%s was taken", bad[i].spec);
        cr_expect(strstr(why, bad[i].want), "%s: '%s' does not say '%s'", bad[i].spec, why, bad[i].want);
    }
}

Test(cluster_config, a_node_id_not_in_the_cluster_is_refused_at_start)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hx_cluster_config_t cfg = {.loop = &loop, .dir = "/nonexistent/never-made", .self = 4};
    char why[300], err[300];
    cr_assert_eq(hx_cluster_parse("1=127.0.0.1:1=tcp://127.0.0.1:2,2=127.0.0.1:3=tcp://127.0.0.1:4,"
                                  "3=127.0.0.1:5=tcp://127.0.0.1:6", &cfg, why, sizeof why), 0, "%s", why);
    cr_expect_null(hx_cluster_start(&cfg, err, sizeof err));
    cr_expect(strstr(err, "--node-id 4 is not one of --cluster's nodes"), "%s", err);
    cfg.self = 1;                           /* its directory cannot be made: named */
    cr_expect_null(hx_cluster_start(&cfg, err, sizeof err));
    cr_expect(strstr(err, "/nonexistent/never-made"), "%s", err);
    uv_loop_close(&loop);
}

/* The audit heads the replicated state keeps (hx_cluster_anchor_put): in the order last
 * recorded; a node's new head replaces its old one and moves it to the end; with the list
 * full, the node recorded least recently is forgotten, never one that recorded since. */
Test(cluster_config, audit_heads_forget_the_least_recently_recorded_node)
{
    enum { MAX = 4 };
    hx_cluster_anchor_t list[MAX];
    size_t n = 0;
    uint8_t head[HX_STORE_ANCHOR_MAX];
    for (uint64_t node = 1; node <= MAX; node++) {
        memset(head, (int)node, sizeof head);
        hx_cluster_anchor_put(list, &n, MAX, node, head, 8);
    }
    cr_assert_eq(n, MAX);
    memset(head, 0xa1, sizeof head);            /* node 1 records again: it is the newest now */
    hx_cluster_anchor_put(list, &n, MAX, 1, head, 32);
    cr_assert_eq(n, MAX, "a node's second head replaces its first");
    uint64_t want[MAX] = {2, 3, 4, 1};
    for (size_t i = 0; i < MAX; i++)
        cr_expect_eq(list[i].node, want[i], "slot %zu holds node %llu", i, (unsigned long long)list[i].node);
    cr_expect_eq(list[MAX - 1].len, 32);
    cr_expect_eq(list[MAX - 1].blob[31], 0xa1);
    memset(head, 5, sizeof head);               /* a fifth node: node 2, the least recent, goes */
    hx_cluster_anchor_put(list, &n, MAX, 5, head, HX_STORE_ANCHOR_MAX);
    cr_assert_eq(n, MAX);
    uint64_t after[MAX] = {3, 4, 1, 5};
    for (size_t i = 0; i < MAX; i++) {
        cr_expect_eq(list[i].node, after[i], "slot %zu holds node %llu", i, (unsigned long long)list[i].node);
        cr_expect_eq(list[i].blob[0], after[i] == 1 ? 0xa1 : (uint8_t)after[i], "node %llu's head",
                     (unsigned long long)after[i]);
    }
    cr_expect_eq(list[MAX - 1].len, HX_STORE_ANCHOR_MAX);
    hx_cluster_anchor_put(list, &n, MAX, 6, head, 0);   /* a sixth: node 3 goes, the least recent now */
    cr_expect_eq(list[0].node, 4);
    cr_expect_eq(list[2].node, 5);
    cr_expect_eq(list[3].node, 6);
    cr_expect_eq(list[3].len, 0);
}
