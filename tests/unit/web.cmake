# Unit suites for services/web (the clinic portal's pieces). The accounts store's suites run on
# both stores (STORES: again as <name>_pg on a PostgreSQL server the runner starts on 127.0.0.1).
hx_unit_test(test_accounts LIBS hx_web_accounts hx_pgtest STORES)
hx_unit_test(test_accounts_totp LIBS hx_web_accounts hx_pgtest STORES)
hx_unit_test(test_api LIBS hx_web_accounts hx_pgtest STORES)
hx_unit_test(test_html LIBS hx_web_html)
