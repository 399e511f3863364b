# Unit suite for the clinic CLI's pure parts (services/cli: tables, times, settings, import
# files, inbox groups, the top screen, progress).
if(TARGET hx_cli)
  hx_unit_test(test_cli LIBS hx_cli)
endif()
