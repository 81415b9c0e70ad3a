"""What a shopper stumbled on in a walk through the page (desktop and phone, Russian and English),
each fixed in web/ and kept fixed here, end to end against the devserver in Chromium."""

from tests.browser_support import fill_look, in_viewport, needs_chromium, wait_status

# The browser fixtures (browser, page, phone, images, axe_source): one Chromium for the session.
pytest_plugins = ["tests.browser_fixtures"]

pytestmark = needs_chromium


def test_on_a_phone_create_brings_the_look_on_screen_without_scrolling_back_up(phone, devserver, images):
    # The look moves above the form on a phone; the shopper taps Create at the bottom of the form
    # and must not be left looking at the greyed form while the step (and Continue) is off-screen.
    phone.goto(devserver.url + "/")
    fill_look(phone, images)
    phone.get_by_test_id("start").click()
    wait_status(phone, "waiting_continue")
    assert in_viewport(phone, phone.get_by_test_id("progress"))
    assert in_viewport(phone, phone.get_by_test_id("continue"))
    assert phone.console_errors == []


def test_my_looks_follows_the_look_on_screen_as_its_step_ends(page, devserver, images):
    page.goto(devserver.url + "/?lang=en")
    fill_look(page, images)
    page.get_by_test_id("start").click()
    current = page.locator("[data-testid=look-item][aria-current=true]")
    current.wait_for()
    wait_status(page, "waiting_continue")
    # No reload and no click: the list's item of this look says it waits, and offers Finish.
    current.locator(".badge.waiting_continue").wait_for(timeout=5_000)
    assert current.locator(".badge").inner_text() == "waiting for you"
    assert current.get_by_test_id("look-finish").is_visible()
    assert page.console_errors == []
