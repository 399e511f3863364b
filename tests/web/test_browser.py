#!/usr/bin/python3
"""The clinic portal in a real browser: headless Chromium driven by Selenium against a real
network (tests/web/portal_net.py), run with Debian's Python (/usr/bin/python3).

The story: a front desk fills in the referral form, first with a mistake, sees the error
next to its field, puts it right and sends; the clinician of the clinic scheduling booked it
at finds it under New, accepts, asks a question on the care thread; the referrer finds it
under Needs reply and answers; the clinician starts care and completes it with a summary.
All the while the referrer's referral page, open in a browser of its own that the test never
navigates, shows each step as it happens (Server-Sent Events, no reload). Also: a reviewer's
queue, a network admin's page, the inbox at a phone's width.

Every page is checked with axe-core (tests/web/node_modules, `npm ci --prefix tests/web`):
any violation of impact serious or critical fails. Screenshots of the pages go to
$HX_BUILD_DIR/tests/web-screenshots/.

Needs Debian's chromium, chromium-driver and python3-selenium (`make deps`): without them the
test fails, naming the missing package. No fixed sleeps: every wait is on a condition."""
import atexit
import base64
import os
import signal
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as e:            # reported by setUpModule as a failure, not a skip
    webdriver = None
    SELENIUM_ERROR = str(e)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = os.path.join(pn.SOURCE, "tests", "web", "node_modules", "axe-core", "axe.min.js")
SHOTS = os.path.join(pn.BUILD, "tests", "web-screenshots")
WAIT = float(os.environ.get("HX_BROWSER_WAIT", "180"))      # any one condition, on a slow machine
DESKTOP = (1280, 900)
PHONE = (390, 844)

_drivers = []


def _quit_all():
    for d in list(_drivers):
        _quit(d)


def _quit(d):
    if d in _drivers:
        _drivers.remove(d)
    try:
        d.quit()
    except Exception:           # already gone: nothing to stop
        pass


atexit.register(_quit_all)
# ctest's timeout (and a Ctrl-C) end the test with a signal: stop Chromium and the network too
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def setUpModule():
    missing = []
    if webdriver is None:
        missing.append("Selenium for Python 3 cannot be imported (%s): install Debian's package "
                       "python3-selenium (make deps), and run this with /usr/bin/python3" % SELENIUM_ERROR)
    if not os.access(CHROMIUM, os.X_OK):
        missing.append("%s is missing: install Debian's package chromium (make deps)" % CHROMIUM)
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append("%s is missing: install Debian's package chromium-driver (make deps)" % CHROMEDRIVER)
    if not os.path.exists(AXE):
        missing.append("%s is missing: run `npm ci --prefix tests/web` (npm: Debian's package npm, make deps)" % AXE)
    if missing:
        raise RuntimeError("the portal's browser test cannot run:\n  " + "\n  ".join(missing))
    os.makedirs(SHOTS, exist_ok=True)


def browser(size=DESKTOP):
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=%d,%d" % size,
              "--lang=en-US", "--force-device-scale-factor=1", "--disable-gpu", "--no-first-run",
              "--disable-extensions", "--disable-background-networking", "--disable-sync",
              # pages in the background keep their event streams and timers as in front
              "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
              "--disable-backgrounding-occluded-windows"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    _drivers.append(d)
    try:
        d.set_page_load_timeout(WAIT)
        d.set_script_timeout(WAIT)
        if size == PHONE:       # the viewport exactly a phone's, with a phone's touch and meta viewport
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": True})
    except BaseException:
        _quit(d)
        raise
    return d


def until(d, what, check, timeout=WAIT):
    """Waits for check(d) to return something true; a page being redrawn or loaded meanwhile
    (stale or missing elements, a script run mid-navigation) only means not yet."""
    def attempt(drv):
        try:
            return check(drv)
        except WebDriverException:
            return False
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.2).until(attempt)
    except TimeoutException:
        raise AssertionError("timed out after %.0f s waiting for %s (at %s)" % (timeout, what, _url(d))) from None


def _url(d):
    try:
        return d.current_url
    except WebDriverException:
        return "?"


def main_text(d):
    return d.find_element(By.ID, "main").text


def text_of(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def click(d, element_id, what=None):
    """Clicks #element_id once it is there and can be clicked; a live redraw in between only
    means find it again."""
    def attempt(drv):
        el = drv.find_element(By.ID, element_id)
        if not (el.is_displayed() and el.is_enabled()):
            return False
        drv.execute_script("arguments[0].scrollIntoView({block:'center'})", el)
        el.click()
        return True
    until(d, what or ("#%s to click" % element_id), attempt)


def fill(d, element_id, value):
    el = d.find_element(By.ID, element_id)
    el.clear()
    if value:
        el.send_keys(value)


def set_value(d, element_id, value):
    """A date input's value as its picker sets it (typing into one depends on the locale)."""
    d.execute_script("var e=document.getElementById(arguments[0]);e.value=arguments[1];"
                     "e.dispatchEvent(new Event('input',{bubbles:true}));"
                     "e.dispatchEvent(new Event('change',{bubbles:true}));", element_id, value)
    got = d.find_element(By.ID, element_id).get_attribute("value")
    assert got == value, "%s: set %r, reads %r" % (element_id, value, got)


def shot(d, name):
    """The whole page (not only the viewport) as SHOTS/name.png."""
    path = os.path.join(SHOTS, name + ".png")
    try:
        m = d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m.get("cssContentSize") or m["contentSize"]
        view = m.get("cssLayoutViewport") or m["layoutViewport"]
        w = max(int(size["width"]), int(view["clientWidth"]))
        h = min(max(int(size["height"]), int(view["clientHeight"])), 8000)
        png = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                           "clip": {"x": 0, "y": 0, "width": w, "height": h,
                                                                    "scale": 1}})
        with open(path, "wb") as f:
            f.write(base64.b64decode(png["data"]))
    except WebDriverException:
        d.save_screenshot(path)
    return path


def login(d, url, user):
    d.get(url + "/login")
    until(d, "the sign-in form", lambda drv: drv.find_element(By.ID, "user").is_displayed())
    fill(d, "user", user)
    fill(d, "password", pn.PASSWORD)
    d.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    until(d, "signed in as " + user, lambda drv: user in text_of(drv, "header.top .who"))


# ---- axe-core ---------------------------------------------------------------------------------

_axe_source = None

AXE_RUN = """
var done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(function (r) {
  done({violations: r.violations.map(function (v) {
    return {id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
            nodes: v.nodes.map(function (n) {
              return {target: n.target.join(' '), html: n.html, summary: n.failureSummary};
            })};
  })});
}, function (e) { done({error: String(e && e.stack || e)}); });
"""


def axe_violations(d):
    global _axe_source
    if _axe_source is None:
        with open(AXE, encoding="utf-8") as f:
            _axe_source = f.read()
    if not d.execute_script("return !!window.axe"):
        d.execute_script(_axe_source)
    r = d.execute_async_script(AXE_RUN)
    if r.get("error"):
        raise AssertionError("axe.run failed: " + r["error"])
    return r["violations"]


def axe_text(page, violations):
    out = []
    for v in violations:
        out.append("  [%s] %s on %s: %s (%s)" % (v["impact"], v["id"], page, v["help"], v["helpUrl"]))
        for n in v["nodes"][:8]:
            out.append("      %s\n        %s\n        %s" % (n["target"], n["html"][:300],
                                                          (n["summary"] or "").replace("\n", "\n        ")))
        if len(v["nodes"]) > 8:
            out.append("      ... and %d more" % (len(v["nodes"]) - 8))
    return "\n".join(out)


class Portal(unittest.TestCase):
    """One network for the whole class; each test its own browsers, quit when it ends."""

    @classmethod
    def setUpClass(cls):
        cls.net = pn.Network()
        cls.url = cls.net.url

    @classmethod
    def tearDownClass(cls):
        cls.net.close()

    def setUp(self):
        self.browsers = {}
        self.addCleanup(self._quit_browsers)

    def _quit_browsers(self):
        if self._failed():
            self._diagnose()
        for d in self.browsers.values():
            _quit(d)
        self.browsers = {}

    def open(self, name, size=DESKTOP):
        self.browsers[name] = browser(size)
        return self.browsers[name]

    def _failed(self):
        """Whether this test has failed so far (unittest records a failure as it happens)."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return bool(result) and any(t is self for t, _ in result.failures + result.errors)

    def _diagnose(self):
        """After a failure: a screenshot of each open browser, what its page said, the portal's log."""
        for name, d in self.browsers.items():
            try:
                p = shot(d, "FAILED-%s-%s" % (self._testMethodName, name))
                sys.stderr.write("\n--- browser %s at %s (screenshot %s):\n%s\n" %
                                 (name, d.current_url, p, d.find_element(By.TAG_NAME, "body").text[:3000]))
            except Exception as e:          # the browser itself may be what failed
                sys.stderr.write("\n--- browser %s: %s\n" % (name, e))
        sys.stderr.write("\n--- handoff-web's log (last 60 lines):\n%s\n" %
                         "\n".join(self.net.log("web").splitlines()[-60:]))

    def check_axe(self, d, page):
        violations = axe_violations(d)
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        other = [v for v in violations if v not in bad]
        if other:
            sys.stderr.write("axe, %s (not failing: moderate/minor):\n%s\n" % (page, axe_text(page, other)))
        if bad:
            self.fail("axe-core: %d serious or critical violation(s) on the %s page:\n%s" %
                      (len(bad), page, axe_text(page, bad)))

    def assert_fits(self, d, page):
        """No sideways scrolling: not of the page, nor of the inbox's table in its box."""
        page_w, view_w, boxes = d.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth, Array.prototype.map.call("
            "document.querySelectorAll('main .scroll'), function(e){return [e.scrollWidth, e.clientWidth];})];")
        self.assertLessEqual(page_w, view_w, page + " is wider than the window")
        for scroll_w, client_w in boxes:
            self.assertLessEqual(scroll_w, client_w + 1, page + ": a table wider than its box")

    # ---- the story ---------------------------------------------------------------------------
    def test_referral_story_followed_live(self):
        url = self.url
        ref = sample_form_referral()

        # the front desk signs in and fills in the form, forgetting the family name
        desk = self.open("desk")
        desk.get(url + "/login")
        until(desk, "the sign-in page", lambda d: d.find_element(By.ID, "user"))
        shot(desk, "01-login")
        self.check_axe(desk, "sign-in")
        login(desk, url, "harbour.desk")
        desk.get(url + "/new")
        until(desk, "the referral form", lambda d: d.find_element(By.ID, "do-submit"))
        fill_form(desk, ref, skip=("patient.family_name",))
        click(desk, "do-submit")
        until(desk, "the form's errors", lambda d: d.find_element(By.ID, "form-errors"))
        err = until(desk, "the family name's own error",
                    lambda d: d.find_element(By.ID, "f-patient-family_name-error"))
        self.assertEqual(err.text, "Patient's family name: required")
        field = desk.find_element(By.ID, "f-patient-family_name")
        self.assertEqual(field.get_attribute("aria-invalid"), "true")
        self.assertEqual(field.get_attribute("aria-describedby"), "f-patient-family_name-error")
        # next to that field: between its label and the input, in the same .field
        self.assertTrue(desk.execute_script(
            "var e=document.getElementById('f-patient-family_name-error'),i=document.getElementById("
            "'f-patient-family_name');return e.parentNode===i.parentNode&&e.nextElementSibling===i&&"
            "e.previousElementSibling.tagName==='LABEL'&&e.previousElementSibling.htmlFor===i.id;"))
        # only that field is marked, and what was typed is still there
        self.assertEqual([e.get_attribute("id") for e in desk.find_elements(By.CSS_SELECTOR, "[aria-invalid=true]")],
                         ["f-patient-family_name"])
        self.assertEqual(desk.find_element(By.ID, "f-patient-given_name").get_attribute("value"),
                         ref["patient"]["given_name"])
        self.assertEqual(desk.find_element(By.ID, "f-patient-birth_date").get_attribute("value"),
                         ref["patient"]["birth_date"])
        shot(desk, "02-form-with-error")
        self.check_axe(desk, "referral form with errors")

        # put right and sent
        fill(desk, "f-patient-family_name", ref["patient"]["family_name"])
        click(desk, "do-submit")
        until(desk, "the sent referral's page", lambda d: "/referral?id=R-" in d.current_url)
        rid = urllib.parse.parse_qs(urllib.parse.urlparse(desk.current_url).query)["id"][0]
        self.assertIn("Sent: intake checks it", main_text(desk))

        # where scheduling booked it, as the referrer's page shows it (live: no reload)
        def booked(d):
            for row in handoff_rows(d):
                if row[0] == "physiotherapy" and row[1] not in ("", "-"):
                    return row[1]
            return None
        receiver = until(desk, "the physiotherapy handoff booked somewhere", booked)
        self.assertNotEqual(receiver, "harbour")
        self.assertIn(receiver, self.net.clinics)

        # the referrer's page, open in a browser of its own that is never navigated from here on
        watch = self.open("watcher")
        login(watch, url, "harbour.clinician")
        watch.get(url + "/referral?id=" + rid)
        until(watch, "the referrer's page", lambda d: rid in text_of(d, "main h1"))
        until(watch, "the page following its clinic live",
              lambda d: d.execute_script("return document.documentElement.dataset.live==='on'"))
        watch_url = watch.current_url
        watch.execute_script("window.hxNeverReloaded = 'yes'")
        shot(watch, "04-referral-referrer-before")
        seen = [main_text(watch)]

        def watch_for(step, check):
            until(watch, "the referrer's page to show " + step + " without a reload", check)
            now = main_text(watch)
            self.assertNotEqual(now, seen[-1], step)
            seen.append(now)
            self.assertEqual(watch.execute_script("return window.hxNeverReloaded"), "yes",
                             "the referrer's page was reloaded at " + step)

        def watch_status(status):
            return lambda d: any(r[0] == "physiotherapy" and r[4].startswith(status) for r in handoff_rows(d))

        # the receiving clinician finds it under New
        clin = self.open("clinician")
        login(clin, url, receiver + ".clinician")
        until(clin, "the inbox's New folder", lambda d: text_of(d, "main h1") == "New")
        link = "main a[href='/referral?id=%s']" % rid
        until(clin, "the referral in New", lambda d: d.find_element(By.CSS_SELECTOR, link))
        shot(clin, "03-inbox-new")
        self.check_axe(clin, "inbox")
        self.assert_fits(clin, "the inbox")
        click_css(clin, link)
        until(clin, "the Accept button", lambda d: d.find_element(By.ID, "do-accept-physiotherapy"))
        # on a wide screen the triage words and the handoffs are real tables, header over columns
        self.assertEqual(clin.execute_script("return getComputedStyle(document.querySelector('table.cards'))"
                                             ".display"), "table")
        self.assertEqual(clin.execute_script("return getComputedStyle(document.querySelector('table.cards thead'))"
                                             ".display"), "table-header-group")
        shot(clin, "05-referral-clinician-before")
        self.check_axe(clin, "referral")

        # accepts
        click(clin, "do-accept-physiotherapy")
        until(clin, "Start care offered (accepted)", lambda d: d.find_element(By.ID, "do-start-physiotherapy"))
        self.assertEqual(received_status(clin), "accepted")
        watch_for("the acceptance", watch_status("accepted"))

        # asks a question on the care thread
        question = "Has the patient had an X-ray of the ankle since the emergency visit?"
        post(clin, "question", question)
        until(clin, "the question on the thread", lambda d: question in text_of(d, "#thread"))
        watch_for("the question", lambda d: question in text_of(d, "#thread") and
                  "A question awaits this clinic's reply." in text_of(d, "#thread"))

        # the referrer finds it under Needs reply and answers
        desk.get(url + "/?folder=needs_reply")
        until(desk, "the Needs reply folder", lambda d: text_of(d, "main h1") == "Needs reply")
        until(desk, "the referral under Needs reply", lambda d: d.find_element(By.CSS_SELECTOR, link))
        tags = desk.find_elements(By.CSS_SELECTOR, "main table.inbox tbody tr span.tag")
        self.assertEqual([t.text for t in tags], ["reply"], "the row's reply tag")
        self.assertNotIn("<span", main_text(desk), "markup shown as text")
        shot(desk, "06-needs-reply")
        self.check_axe(desk, "inbox, Needs reply")
        self.assert_fits(desk, "the Needs reply folder")
        click_css(desk, link)
        until(desk, "the question on the referrer's page", lambda d: question in text_of(d, "#thread"))
        self.assertEqual(Select(desk.find_element(By.ID, "kind")).first_selected_option.get_attribute("value"),
                         "reply", "a question awaiting this clinic: the post form offers a reply first")
        answer = "No X-ray: the Ottawa ankle rules were negative. Full report attached to our file."
        post(desk, "reply", answer)
        until(desk, "the reply on the thread", lambda d: answer in text_of(d, "#thread"))
        watch_for("the reply", lambda d: answer in text_of(d, "#thread") and
                  "awaits this clinic's reply" not in text_of(d, "#thread"))

        # the clinician sees the answer (live too), starts care and completes it with a summary
        until(clin, "the reply on the clinician's page", lambda d: answer in text_of(d, "#thread"))
        click(clin, "do-start-physiotherapy")
        until(clin, "Complete offered (in progress)", lambda d: d.find_element(By.ID, "open-complete-physiotherapy"))
        watch_for("care started", watch_status("in-progress"))
        summary = "Six sessions of balance and strengthening; back to futsal, home program given."
        click(clin, "open-complete-physiotherapy")

        def complete(d):
            fill(d, "summary-complete-physiotherapy", summary)
            if d.find_element(By.ID, "summary-complete-physiotherapy").get_attribute("value") != summary:
                return False
            d.find_element(By.ID, "do-complete-physiotherapy").click()
            return True
        until(clin, "the completion form filled and sent", complete)
        until(clin, "completed", lambda d: received_status(d) == "completed")
        watch_for("the completion and its summary",
                  lambda d: watch_status("completed")(d) and summary in text_of(d, "#thread"))

        # the referrer's page followed all of it in place
        self.assertEqual(watch.current_url, watch_url)
        self.assertEqual(len(seen), 6)
        self.assertNotIn("Reload to see it", main_text(watch))
        history = text_of(watch, "main ol.history")
        for event in ("accept", "start", "complete"):
            self.assertIn(event, history)
        shot(watch, "07-referral-referrer-after")
        self.check_axe(watch, "referral (referrer's side, completed)")

        desk.get(url + "/?folder=completed")
        until(desk, "the referral under Completed", lambda d: d.find_element(By.CSS_SELECTOR, link))
        shot(desk, "08-completed")
        self.assert_fits(desk, "the Completed folder")
        shot(clin, "09-referral-clinician-after")

    # ---- the other roles -------------------------------------------------------------------------
    def test_reviewer_sees_the_review_queue(self):
        rid = self.net.submit("riverdale", pn.sample_referral("16-needs-review-jaw.json", ref="RD-BROWSER-16"))
        d = self.open("reviewer")
        login(d, self.url, "review.reviewer")
        d.get(self.url + "/review")
        until(d, "the review queue", lambda drv: text_of(drv, "main h1").startswith("Needs review"))
        until(d, "the referral waiting for review", lambda drv: rid in main_text(drv))
        self.assertTrue(d.find_element(By.ID, "decide-" + rid).is_displayed())
        self.assertIn("Triage could not read", main_text(d))
        shot(d, "10-review")
        self.check_axe(d, "review")

    def test_network_admin_sees_the_admin_page(self):
        d = self.open("admin")
        login(d, self.url, "network.admin")
        d.get(self.url + "/admin")
        until(d, "the admin page", lambda drv: text_of(drv, "main h1") == "Admin")
        text = main_text(d)
        for c in self.net.clinics:
            self.assertIn(c, text)
        self.assertIn("review (reviewer)", text)
        self.assertIn("network.admin", text)
        shot(d, "11-admin")
        self.check_axe(d, "admin")
        # and on a phone: nothing wider than it, still no violation
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
        d.get(self.url + "/admin")
        until(d, "the admin page on a phone", lambda drv: text_of(drv, "main h1") == "Admin")
        self.assertLessEqual(d.execute_script("return document.documentElement.scrollWidth"), PHONE[0],
                             "the admin page is wider than the phone")
        shot(d, "14-mobile-admin")
        self.check_axe(d, "admin at a phone's width")

    def test_inbox_at_a_phones_width(self):
        rid = self.net.submit("harbour", pn.sample_referral(ref="HB-PHONE-0001"))
        d = self.open("phone", PHONE)
        login(d, self.url, "harbour.desk")
        self.assertEqual(d.execute_script("return window.innerWidth"), PHONE[0])
        d.get(self.url + "/?folder=booked")
        until(d, "the Booked folder", lambda drv: text_of(drv, "main h1") == "Booked")
        link = "main a[href='/referral?id=%s']" % rid
        until(d, "the referral under Booked", lambda drv: drv.find_element(By.CSS_SELECTOR, link))
        # nothing wider than the phone: no sideways scrolling of the page
        self.assertLessEqual(d.execute_script("return document.documentElement.scrollWidth"), PHONE[0])
        # the table's rows become cards: each cell on a line of its own
        self.assertEqual(d.execute_script("return getComputedStyle(document.querySelector('table.inbox td'))"
                                          ".display"), "block")
        shot(d, "12-mobile-inbox")
        self.check_axe(d, "inbox at a phone's width")
        click_css(d, link)
        until(d, "the referral page on the phone", lambda drv: rid in text_of(drv, "main h1"))
        self.assertLessEqual(d.execute_script("return document.documentElement.scrollWidth"), PHONE[0],
                             "the referral page is wider than the phone")
        # its handoffs (and the words triage read) as cards too, not a table cut at the edge
        self.assertEqual(d.execute_script("return getComputedStyle(document.querySelector('table.cards td'))"
                                          ".display"), "block")
        shot(d, "13-mobile-referral")
        self.check_axe(d, "referral at a phone's width")


# ---- the form and pages' parts ------------------------------------------------------------------

def sample_form_referral():
    r = pn.sample_referral(ref="HB-BROWSER-%d" % (time.time_ns() % 10**8))
    r["patient"]["family_name"] = "Mendes-Browser"
    return r


def fill_form(d, ref, skip=()):
    """The referral form filled in as a person would, from a referral's JSON."""
    def get(path):
        v = ref
        for k in path.split("."):
            v = v.get(k, "") if isinstance(v, dict) else ""
        return v
    for path in ("ref", "patient.given_name", "patient.family_name", "patient.phone", "patient.email",
                 "patient.health_card", "patient.language", "referrer.name", "referrer.registration_body",
                 "referrer.registration_number", "referrer.phone", "referrer.email", "reason", "history",
                 "diagnosis", "current_treatment", "expectations"):
        if path not in skip:
            fill(d, "f-" + path.replace(".", "-"), get(path))
    fill(d, "f-conditions", ", ".join(ref.get("conditions", [])))
    set_value(d, "f-patient-birth_date", get("patient.birth_date"))
    Select(d.find_element(By.ID, "f-referrer-discipline")).select_by_value(get("referrer.discipline"))
    Select(d.find_element(By.ID, "f-priority")).select_by_value(get("priority"))
    Select(d.find_element(By.ID, "f-consent")).select_by_value(get("consent"))


def click_css(d, css):
    def attempt(drv):
        el = drv.find_element(By.CSS_SELECTOR, css)
        drv.execute_script("arguments[0].scrollIntoView({block:'center'})", el)
        el.click()
        return True
    until(d, css + " to click", attempt)


def post(d, kind, text):
    """A care-thread post, typed first (a page being typed in is not redrawn under the hand)."""
    def attempt(drv):
        fill(drv, "text", text)
        Select(drv.find_element(By.ID, "kind")).select_by_value(kind)
        if drv.find_element(By.ID, "text").get_attribute("value") != text:
            return False
        if Select(drv.find_element(By.ID, "kind")).first_selected_option.get_attribute("value") != kind:
            return False
        drv.find_element(By.ID, "do-post").click()
        return True
    until(d, "the %s typed and posted" % kind, attempt)


def handoff_rows(d):
    """The referrer's table of handoffs: [discipline, clinic, therapist, slot, status] each."""
    return d.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('main .handoff table tbody tr'),"
        "function(tr){return Array.prototype.map.call(tr.cells,function(c){return c.textContent.trim();});});")


def received_status(d):
    """The receiving clinic's status of its handoff."""
    return d.execute_script("var s=document.querySelector('main .handoff dd .st');return s&&s.textContent.trim();")


if __name__ == "__main__":
    unittest.main(verbosity=2)
