# Unit suites for the clinic side: the CLI's pure parts (services/cli: tables, times, settings, import
# files, the inbox's groups and tables, the top screen, progress).
if(TARGET hx_cli)
  hx_unit_test(test_cli LIBS hx_cli)
endif()

# Unit suite for the clinic library (services/clinic) without a broker: the store, its
# upgrade, ids, and reading it back.
if(TARGET hx_clinic)
  hx_unit_test(test_clinic LIBS hx_clinic PkgConfig::SQLITE)
  # its inbox (hx_inbox.h): the folders, from messages put into a store as a sync stores them
  hx_unit_test(test_inbox LIBS hx_clinic PkgConfig::SQLITE)
  # patient data at rest: sealed values and key ids, the store sealed with its store key (in
  # place, a wrong key, a rotation)
  hx_unit_test(test_at_rest LIBS hx_clinic PkgConfig::SQLITE)
endif()
