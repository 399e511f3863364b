# Unit suites for services/web (the clinic portal's pieces).
hx_unit_test(test_accounts LIBS hx_web_accounts)
hx_unit_test(test_accounts_totp LIBS hx_web_accounts)
hx_unit_test(test_api LIBS hx_web_accounts)
hx_unit_test(test_html LIBS hx_web_html)
