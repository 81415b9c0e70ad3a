"""axe-core in every state of a look (idle, running, ready, failed, completed), desktop and phone,
Russian and English, end to end against the devserver. Each state is also saved as a screenshot
in .screens/ (gitignored) for a person to look at."""

import pytest

from tests.browser_support import (
    DESKTOP,
    PHONE,
    fill_look,
    needs_chromium,
    open_page,
    screenshot,
    serious_violations,
    sim_faults,
    wait_status,
)

# The browser fixtures (browser, page, phone, images, axe_source): one Chromium for the session.
pytest_plugins = ["tests.browser_fixtures"]

pytestmark = needs_chromium


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("lang", ["ru", "en"])
def test_no_serious_accessibility_violations_in_any_state(browser, devserver, images, axe_source, size, lang):
    page = open_page(browser, DESKTOP if size == "desktop" else PHONE,
                     **({} if size == "desktop" else {"is_mobile": True, "has_touch": True}))
    found = {}

    def check(state):
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_function("[...document.images].every((img) => img.complete)")
        screenshot(page, f"{size}-{lang}-{state}")
        found[state] = serious_violations(page, axe_source)

    try:
        page.goto(f"{devserver.url}/?lang={lang}")
        fill_look(page, images)
        check("idle")
        # Long enough that a loaded machine's checker reads the running step's progress in time.
        sim_faults(devserver, duration_s=20)
        page.get_by_test_id("start").click()
        wait_status(page, "processing")
        page.wait_for_function("document.querySelector('[data-testid=step-progress]').hasAttribute('aria-valuenow')")
        check("running")
        sim_faults(devserver, duration_s=None, outcomes=["failed"],
                   failure_error="CUDA out of memory. Tried to allocate 2.00 GiB")
        page.get_by_test_id("continue").wait_for(state="visible", timeout=60_000)
        check("ready")
        page.get_by_test_id("new-look").click()
        check("confirm-new-look")
        page.keyboard.press("Escape")
        page.get_by_test_id("continue").click()
        wait_status(page, "failed")
        check("failed")
        page.locator("#error-more summary").click()
        check("failed-detail")
        page.get_by_test_id("finish").click()
        wait_status(page, "completed")
        check("completed")
        page.get_by_test_id("step-thumb").first.click()
        check("step-full-size")
        page.keyboard.press("Escape")
        page.get_by_test_id("new-look").click()  # a completed look: no question asked
        page.wait_for_function("!location.search.includes('task=')")
        check("my-looks")
    finally:
        sim_faults(devserver, duration_s=None, outcomes=[])
        page.context.close()
    assert {state: v for state, v in found.items() if v} == {}
    assert page.console_errors == []


def test_the_accessibility_check_finds_a_nameless_select(browser, devserver, axe_source):
    """The check above can fail: the category select of issue 11, as it was, is caught."""
    page = open_page(browser)
    try:
        page.goto(devserver.url + "/")
        page.evaluate("document.querySelector('select.category').removeAttribute('aria-label');"
                      "document.querySelectorAll('label.category-label').forEach((l) => l.remove())")
        found = serious_violations(page, axe_source)
    finally:
        page.context.close()
    assert any(line.startswith("select-name (critical)") for line in found), found
