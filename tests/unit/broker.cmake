# Unit suites for broker/ (codec, router).
hx_unit_test(test_wire LIBS hx_router)
hx_unit_test(test_router LIBS hx_router)
hx_unit_test(test_store LIBS hx_router)
hx_unit_test(test_audit LIBS hx_client)
# hx_metrics rendering, the router's "stats" JSON, JSON log lines.
find_package(Threads REQUIRED)
hx_unit_test(test_hx_metrics LIBS hx_router hx_obs PkgConfig::JANSSON Threads::Threads)
