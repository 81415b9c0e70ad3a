"""A look's life in a real browser (Debian's Chromium through Playwright) against the devserver:
the original frontend's request shapes from another origin, and our page's My looks panel and
Share button against the real backend (no mocked routes to the functions)."""

import base64
import functools
import http.server
import io
import os
import threading
import time

import pytest
import requests

from tests.browser_support import needs_chromium, open_page

# The browser fixtures (browser, page, ...): one Chromium for the session.
pytest_plugins = ["tests.browser_fixtures"]

pytestmark = needs_chromium


def png(colour, size=(512, 512)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def other_site(tmp_path_factory):
    """A blank page on another origin, standing for the original frontend's site. A real local
    server: Chromium lets only a loopback page call the loopback devserver."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<!doctype html><title>fitting room</title>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# What the original try-on page sends (pr-poehali-dev/virtual-fitting-room): start with X-User-Id and
# a data-URI photo; status polls and continue with no header, continue with no action.
ORIGINAL_FRONTEND = """async ([base, person, garments]) => {
  const json = async (response) => ({status: response.status, body: await response.json()});
  const started = await json(await fetch(base + "/start", {method: "POST",
      headers: {"Content-Type": "application/json", "X-User-Id": "original-user-1"},
      body: JSON.stringify({person_image: person, garments: garments.map((image) => ({image}))})}));
  const poll = async (wanted) => {
    for (let i = 0; i < 300; i++) {
      const seen = await json(await fetch(base + "/status?task_id=" + started.body.task_id));
      if (seen.status !== 200 || wanted.includes(seen.body.status)) return seen;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return {status: 0, body: "timed out"};
  };
  const first = await poll(["waiting_continue", "failed"]);
  const continued = await json(await fetch(base + "/continue", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({task_id: started.body.task_id})}));
  const last = await poll(["completed", "failed"]);
  return {started, first, continued, last};
}"""


def test_the_original_frontends_requests_work_end_to_end_from_its_own_origin(page, devserver, other_site):
    page.goto(other_site + "/")
    garments = [data_uri(png((40, 90, 200))), data_uri(png((200, 40, 60)))]
    flow = page.evaluate(ORIGINAL_FRONTEND, [devserver.url, data_uri(png((214, 190, 170))), garments])

    assert flow["started"]["status"] == 200 and flow["started"]["body"]["status"] == "pending", flow["started"]
    assert flow["first"]["status"] == 200 and flow["first"]["body"]["status"] == "waiting_continue", flow["first"]
    assert flow["continued"]["status"] == 200 and flow["continued"]["body"]["status"] == "processing"
    last = flow["last"]["body"]
    assert flow["last"]["status"] == 200 and last["status"] == "completed", last
    assert last["current_step"] == 2 and last["result_url"]
    assert requests.get(last["result_url"], timeout=10).content[:8] == b"\x89PNG\r\n\x1a\n"
    # The look is in its user's list, as the site's profile would show it.
    mine = requests.get(devserver.url + "/status", params={"mine": "true"},
                        headers={"X-User-Id": "original-user-1"}, timeout=10).json()
    assert [look["task_id"] for look in mine["looks"]][:1] == [flow["started"]["body"]["task_id"]]


# --- our page: My looks and Share, against the real backend ----------------------------------------

def start_look(devserver, user, garments=1) -> str:
    body = {"person_image": data_uri(png((214, 190, 170))),
            "garments": [data_uri(png((40 + 50 * i, 90, 200))) for i in range(garments)]}
    reply = requests.post(devserver.url + "/start", json=body, headers={"X-User-Id": user}, timeout=30)
    reply.raise_for_status()
    return reply.json()["task_id"]


def wait_for(devserver, task_id, status, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = requests.get(devserver.url + "/status", params={"task_id": task_id}, timeout=10).json()
        if seen["status"] == status:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{task_id} did not reach {status}")


def as_user(page, devserver, user):
    """Our page keeps its anonymous user id in localStorage: make this browser that user's."""
    page.goto(devserver.url + "/")
    page.evaluate("(user) => localStorage.setItem('tryon.user', user)", user)


def test_my_looks_lists_the_users_looks_from_the_backend_and_finishes_one(page, devserver):
    user = "looks-" + os.urandom(4).hex()
    made = [start_look(devserver, user, garments=2) for _ in range(3)]
    for task_id in made:
        wait_for(devserver, task_id, "waiting_continue")
    as_user(page, devserver, user)
    page.reload()  # this browser made none of them: the list comes from status?mine=true

    page.wait_for_function("document.querySelectorAll('[data-testid=look-item]').length === 3")
    shown = page.eval_on_selector_all("[data-testid=look-item]", "items => items.map((li) => li.dataset.task)")
    assert shown == made[::-1]  # newest first
    page.locator(f"[data-testid=look-item][data-task='{made[0]}'] [data-testid=look-finish]").click()
    assert wait_for(devserver, made[0], "completed")["result_url"]
    page.wait_for_function(f"!document.querySelector(\"[data-task='{made[0]}'] [data-testid=look-finish]\")")
    assert page.console_errors == []


def test_finish_in_my_looks_is_sent_again_with_its_step_when_its_answer_was_lost(page, devserver):
    page.add_init_script("window.TRYON_CONFIG = {retryPauseSeconds: 0.05};")
    user = "looks-" + os.urandom(4).hex()
    task_id = start_look(devserver, user, garments=2)
    wait_for(devserver, task_id, "waiting_continue")
    as_user(page, devserver, user)
    page.reload()
    sent = []

    def lose_first_answer(route, request):
        sent.append(request.post_data_json)
        if len(sent) == 1:
            route.fetch()  # it reaches the server and finishes the look; the answer is lost
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/continue", lose_first_answer)
    page.locator(f"[data-testid=look-item][data-task='{task_id}'] [data-testid=look-finish]").click()
    page.wait_for_function(f"!document.querySelector(\"[data-task='{task_id}'] [data-testid=look-finish]\")")
    assert sent == [{"task_id": task_id, "action": "finish", "step": 1}] * 2  # the resend answered 409: done
    assert wait_for(devserver, task_id, "completed")["current_step"] == 1
    assert page.get_by_test_id("error").is_hidden()
    made_here = ("409 (Conflict)", "ERR_CONNECTION_RESET")  # the browser logs the lost answer and the 409
    assert [line for line in page.console_errors if not line.endswith(made_here)] == []


def test_share_gives_a_link_that_opens_the_look_read_only_and_unshare_ends_it(page, devserver, browser):
    user = "share-" + os.urandom(4).hex()
    task_id = start_look(devserver, user)
    wait_for(devserver, task_id, "completed")
    as_user(page, devserver, user)
    page.goto(devserver.url + "/")
    page.locator(f"[data-testid=look-item][data-task='{task_id}'] [data-testid=look-open]").click()
    page.get_by_test_id("share").click()
    page.wait_for_function("document.querySelector('#share-url').value.includes('share=')")
    link = page.locator("#share-url").input_value()
    assert link.startswith(devserver.url + "/?share=") and task_id not in link

    viewer = open_page(browser)  # someone else's browser
    viewer.goto(link)
    viewer.wait_for_function("document.querySelector('[data-testid=progress]').dataset.status === 'completed'")
    # The viewer is told what the look holds, not the owner's next step.
    assert viewer.get_by_test_id("progress").inner_text() == "С вами поделились образом · примерено вещей: 1 из 1"
    image = viewer.get_by_test_id("step-image").get_attribute("src")
    assert requests.get(image, timeout=10).content[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("continue", "finish", "retry", "cancel", "share", "new-look", "looks"):
        assert viewer.get_by_test_id(name).is_hidden(), name
    assert viewer.console_errors == []
    viewer.context.close()

    page.locator("#unshare").click()
    token = link.split("share=")[1].split("&")[0]
    page.locator("#unshare").wait_for(state="hidden")
    assert requests.get(devserver.url + "/status", params={"share": token}, timeout=10).status_code == 404
