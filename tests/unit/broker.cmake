# Unit suites for broker/ (codec, router).
hx_unit_test(test_wire LIBS hx_router)
hx_unit_test(test_router LIBS hx_router)
hx_unit_test(test_store LIBS hx_router)
hx_unit_test(test_audit LIBS hx_client)
