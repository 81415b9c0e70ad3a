"""What a shopper stumbled on in a walk through the page (desktop and phone, Russian and English),
each fixed in web/ and kept fixed here, end to end against the devserver in Chromium."""

import pytest

from tests.browser_support import fill_look, in_viewport, needs_chromium, open_ready_look, wait_status

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


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_on_a_desktop_a_ready_steps_buttons_are_all_above_the_fold(page, devserver, images, lang):
    # The result image filled the screen's height, so Share and New look sat just below the fold.
    open_ready_look(page, devserver, images, lang)
    page.locator("#step-image:not([hidden])").wait_for()
    shown = page.locator(".actions > :not([hidden]), .more-actions > :not([hidden])")
    names = [shown.nth(index).get_attribute("data-testid") for index in range(shown.count())]
    assert {"continue", "finish", "share", "new-look"} <= set(names)
    for where in ("as the page left it", "scrolled to the top"):
        off_screen = [name for name in names if not in_viewport(page, page.get_by_test_id(name))]
        assert off_screen == [], where
        page.evaluate("window.scrollTo(0, 0)")
    assert page.console_errors == []


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("width,height", [(1024, 768), (900, 700)])
def test_on_a_laptop_a_ready_steps_buttons_are_all_on_screen_where_the_page_scrolled(page, devserver, images, lang,
                                                                                    width, height):
    # Between the phone layout and the side column (821-1099 px), Share and New look sat under the
    # image, below a 1024 x 768 screen's fold.
    page.set_viewport_size({"width": width, "height": height})
    open_ready_look(page, devserver, images, lang)
    page.locator("#step-image:not([hidden])").wait_for()
    page.wait_for_function("!document.querySelector('#step-image').classList.contains('dim')")
    shown = page.locator(".actions > :not([hidden]), .more-actions > :not([hidden])")
    names = [shown.nth(index).get_attribute("data-testid") for index in range(shown.count())]
    assert {"continue", "finish", "share", "new-look"} <= set(names)
    assert [name for name in names if not in_viewport(page, page.get_by_test_id(name))] == []
    assert page.console_errors == []
