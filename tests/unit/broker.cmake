# Unit suites for broker/ (codec, router).
hx_unit_test(test_wire LIBS hx_router)
hx_unit_test(test_router LIBS hx_router)
# The routing policy, fair share and the protocol's trust rules, with the built-in table.
hx_unit_test(test_policy LIBS hx_router)
hx_unit_test(test_store LIBS hx_router)
hx_unit_test(test_audit LIBS hx_client)
# The allow-list and the revoked record: parsing, reload changes, revoked keys left out.
hx_unit_test(test_curve LIBS hx_client PkgConfig::ZMQ)
# hx_metrics rendering, the router's "stats" JSON, JSON log lines.
find_package(Threads REQUIRED)
hx_unit_test(test_hx_metrics LIBS hx_router hx_obs PkgConfig::JANSSON Threads::Threads)
