# Unit suites for services/clinical (the clinical domain library). Data files are read from HX_SOURCE_DIR.
hx_unit_test(test_refjson LIBS hx_clinical)
hx_unit_test(test_intake LIBS hx_clinical)
hx_unit_test(test_registration LIBS hx_clinical)
hx_unit_test(test_triage LIBS hx_clinical)
hx_unit_test(test_schedule LIBS hx_clinical)
# time zones, places, closures and distances in the directory and the slot finder
hx_unit_test(test_place LIBS hx_clinical)
hx_unit_test(test_lifecycle LIBS hx_clinical)
hx_unit_test(test_issuer LIBS hx_clinical)
hx_unit_test(test_thread_rules LIBS hx_clinical)
# test_gen reads the stories it writes with the CLI's story reader (services/cli, cli_story)
hx_unit_test(test_gen LIBS hx_gen hx_cli)
hx_unit_test(test_vignettes LIBS hx_clinical)
# scheduling's store (services/scheduling, hx_booking): its migrations
hx_unit_test(test_booking_migrate LIBS hx_booking)
# its data key rotated (--rekey, hx_booking_rekey): every value sealed again, nothing left readable
hx_unit_test(test_booking_rekey LIBS hx_booking PkgConfig::SQLITE)
# Scheduling's suites below run on either store: once on SQLite, once more (<name>_pg) on a
# PostgreSQL server the runner starts on 127.0.0.1 (tests/support/hx_pgtest_hooks.h).
# scheduling's wait list with an injectable clock (services/scheduling/hx_waitlist.c)
hx_unit_test(test_waitlist LIBS hx_booking hx_pgtest STORES)
# a collaborative massage booked again after the assessment is past (injected clock)
hx_unit_test(test_collab_window LIBS hx_booking hx_pgtest STORES)
# the network's figures scheduling answers a StatsRequest with (hx_stats.c): known bookings, an
# empty network, one clinic (injected clock)
hx_unit_test(test_stats LIBS hx_booking hx_pgtest STORES)
# the services' SQL store (services/store, hx_db) on SQLite and on a PostgreSQL server the suite
# starts on 127.0.0.1 (hx_pgtest), the same tests on both
hx_unit_test(test_db LIBS hx_store hx_pgtest)
