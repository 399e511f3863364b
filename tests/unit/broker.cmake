# Unit suites for broker/ (codec, router).
# test_wire also checks two of the core's private helpers (the id map and CRC-32C).
hx_unit_test(test_wire LIBS hx_core)
target_include_directories(test_wire PRIVATE ${PROJECT_SOURCE_DIR}/broker/core)
# The router's suites share router_test.c: the frames it sends kept decoded, envelope builders.
add_library(hx_router_test STATIC unit/router_test.c)
target_include_directories(hx_router_test PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/unit)
target_link_libraries(hx_router_test PUBLIC hx_core PkgConfig::CRITERION)
hx_unit_test(test_router LIBS hx_router_test)
# The routing policy, fair share and the protocol's trust rules, with the built-in table.
hx_unit_test(test_policy LIBS hx_router_test)
hx_unit_test(test_store LIBS hx_core)
# handoff-broker --rekey: the log sealed anew, checked, and finished after a stop at any step.
hx_unit_test(test_rekey LIBS hx_core)
hx_unit_test(test_compact LIBS hx_router_test)
hx_unit_test(test_audit LIBS hx_client)
# The allow-list and the revoked record: parsing, reload changes, revoked keys left out.
hx_unit_test(test_curve LIBS hx_client PkgConfig::ZMQ)
# hx_metrics rendering, the router's "stats" JSON, JSON log lines.
find_package(Threads REQUIRED)
hx_unit_test(test_hx_metrics LIBS hx_core hx_obs PkgConfig::JANSSON Threads::Threads)
# The log's online snapshot (hx_store_snapshot.c): copies taken while a store is written recover.
hx_unit_test(test_store_snapshot LIBS hx_core Threads::Threads)
# A client and a worker given a replicated broker's nodes find the leader (ERR_NOT_LEADER),
# against fake nodes on loopback ports.
hx_unit_test(test_client_failover LIBS hx_client PkgConfig::ZMQ Threads::Threads)
# --cluster's nodes read and refused with the element named; a node id not among them.
hx_unit_test(test_cluster_config LIBS hx_cluster)
# libraft 0.15's raft_uv loses a truncation asked for while a snapshot is stored (and a
# snapshot asked for while a truncation runs): hx_raft_guard keeps them apart, on a real directory.
hx_unit_test(test_raft_guard LIBS hx_cluster)

if(HANDOFF_BROKER_ON_JEMALLOC)
  # The broker really runs on jemalloc with its malloc_conf (broker_main.c).
  add_test(NAME broker_memory_pages
    COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/broker_memory_pages.sh $<TARGET_FILE:handoff-broker>)
  set_tests_properties(broker_memory_pages PROPERTIES LABELS unit TIMEOUT 30)
endif()
