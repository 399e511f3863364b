# Unit suites for services/fhir (the FHIR R4 mapping).
hx_unit_test(test_fhir_map LIBS hx_fhir)
hx_unit_test(test_fhir_read LIBS hx_fhir)
hx_unit_test(test_fhir_search LIBS hx_fhir)
