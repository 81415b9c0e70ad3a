"""Issue 7's bounds, each shown from both sides: just under it is accepted, over it is refused with
a clear 4xx, nothing written and no prediction created."""

import base64
import json
import re
import uuid

import pytest

from shared.settings import load
from tests.conftest import GARMENTS, PERSON, data_uri, drive, look, png_bytes, run_sql

HTTPS = "https://cdn.example.com/"


def task_count(env) -> int:
    return run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_tasks")[0][0]


def assert_refused(reply, status, code, env, tasks_before, sim, creates_before=0):
    assert reply.status == status, reply
    assert reply.body["code"] == code
    assert task_count(env) == tasks_before
    assert sim.stats["create_calls"] == creates_before


def test_active_looks_per_user(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_ACTIVE_TASKS_PER_USER", "2")
    first = fn.start(look(1)).body["task_id"]
    assert fn.start(look(1)).status == 200  # the 2nd: at the cap, accepted
    reply = fn.start(look(1))
    assert_refused(reply, 429, "too_many_active_tasks", env, 2, sim)
    assert int(reply.headers["Retry-After"]) > 0
    assert reply.body["error"] == "You already have 2 looks in progress. Wait for one to finish or cancel it before starting another."
    assert fn.start(look(1), user="someone-else").status == 200
    fn.act(first, "cancel")
    assert fn.start(look(1)).status == 200


def test_one_look_in_progress_is_said_in_the_singular(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_ACTIVE_TASKS_PER_USER", "1")
    assert fn.start(look(1)).status == 200
    reply = fn.start(look(1))
    assert_refused(reply, 429, "too_many_active_tasks", env, 1, sim)
    assert reply.body["error"].startswith("You already have 1 look in progress. ")


def test_starts_per_user_per_hour(fn, sim, env, monkeypatch):
    monkeypatch.setenv("START_RATE_PER_USER", "2")
    for _ in range(2):
        task_id = fn.start(look(1)).body["task_id"]
        fn.act(task_id, "cancel")
    reply = fn.start(look(1))
    assert_refused(reply, 429, "start_rate_limited", env, 2, sim)
    assert 0 < int(reply.headers["Retry-After"]) <= 3600


def test_continue_and_retry_spend_from_the_users_hourly_step_budget(fn, sim, env, monkeypatch):
    monkeypatch.setenv("START_RATE_PER_USER", "1")
    monkeypatch.setenv("MAX_GARMENTS", "2")   # 1 look x 2 garments = 2 steps an hour
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    sim.set_faults(outcomes=["failed"])
    assert fn.act(task_id).status == 200      # step 2 of 2: within the budget
    drive(fn, task_id, "failed")
    creates = sim.stats["create_calls"]
    reply = fn.act(task_id, "retry")          # a 3rd step: over it
    assert reply.status == 429 and reply.body["code"] == "step_rate_limited"
    assert fn.status(task_id).body["status"] == "failed"
    assert sim.stats["create_calls"] == creates


def test_unfinished_looks_on_the_whole_site(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_ACTIVE_TASKS", "2")
    assert fn.start(look(1), user="a").status == 200
    assert fn.start(look(1), user="b").status == 200
    assert_refused(fn.start(look(1), user="c"), 429, "service_busy", env, 2, sim)


def test_steps_per_hour_on_the_whole_site_count_looks_not_yet_started(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_STEPS_PER_HOUR", "2")
    task_a = fn.start(look(2), user="a").body["task_id"]
    assert fn.start(look(1), user="b").status == 200  # still pending: counts as its first step
    assert_refused(fn.start(look(1), user="c"), 429, "service_busy", env, 2, sim)
    drive(fn, task_a, "waiting_continue", user="a")
    reply = fn.act(task_a, user="a")
    assert reply.status == 429 and reply.body["code"] == "service_busy"
    assert fn.status(task_a, user="a").body["status"] == "waiting_continue"


def step_minutes(env) -> dict:
    return dict(run_sql(env["DATABASE_URL"], "SELECT minute, steps FROM replicate_step_minutes"))


def test_the_site_s_steps_per_hour_are_kept_per_minute_by_the_step_rows_themselves(fn, sim, env, task_factory,
                                                                                      monkeypatch):
    """Migration 0010: each step row counts in its minute; old rows and old minutes count nothing."""
    url = env["DATABASE_URL"]
    assert step_minutes(env) == {}
    run_sql(url, "INSERT INTO replicate_step_minutes VALUES (NOW() - INTERVAL '3 hours', 7)")  # long gone
    task_id = task_factory("waiting_continue", current_step=1, intermediate_result="https://img/1.png")
    insert_step = ("INSERT INTO replicate_task_steps (task_id, step, attempt, status, created_at) "
                   "VALUES (%s, 1, %s, 'failed', NOW() - make_interval(mins => %s))")
    run_sql(url, insert_step, (task_id, 1, 0))  # now: a new minute, which drops the 3-hour-old one
    run_sql(url, insert_step, (task_id, 2, 61))  # over an hour ago: outside every window
    assert list(step_minutes(env).values()) == [1]
    monkeypatch.setenv("MAX_STEPS_PER_HOUR", "3")
    assert fn.start(look(1), user="a").status == 200  # 1 step + 1 pending look
    fn.worker()
    assert sum(step_minutes(env).values()) == 2
    assert fn.start(look(1), user="b").status == 200  # 2 steps + 1 pending = 3
    assert_refused(fn.start(look(1), user="c"), 429, "service_busy", env, 3, sim, creates_before=1)


def padded_png(total: int) -> str:
    data = png_bytes()
    return data_uri(data + b"\0" * (total - len(data)))


def test_image_size_just_under_and_over_max_image_bytes(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_IMAGE_BYTES", "20000")
    assert fn.start({"person_image": padded_png(20000), "garments": GARMENTS[:1]}).status == 200
    reply = fn.start({"person_image": padded_png(20001), "garments": GARMENTS[:1]})
    assert_refused(reply, 400, "invalid_image", env, 1, sim)
    assert reply.body["error"] == "person_image is larger than 0.0191 MB."


def test_url_length_just_under_and_over_the_cap(fn, sim, env):
    fits = HTTPS + "a" * (2048 - len(HTTPS))
    assert fn.start({"person_image": fits, "garments": [HTTPS + "shirt.png"]}).status == 200
    reply = fn.start({"person_image": fits + "a", "garments": [HTTPS + "shirt.png"]})
    assert_refused(reply, 400, "invalid_image", env, 1, sim)


def test_the_whole_body_just_under_and_over_its_cap(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_IMAGE_BYTES", "10000")
    monkeypatch.setenv("MAX_GARMENTS", "1")
    cap = load().max_body_bytes
    body = {"person_image": PERSON, "garments": GARMENTS[:1], "prompt_hints": None}
    base = len(json.dumps(body))
    under = json.dumps({**body, "padding": "x" * (cap - base - 16)})
    assert len(under) <= cap
    assert fn.call("start", "POST", body=under, headers={"X-User-Id": "u"}).status == 200
    over = json.dumps({**body, "padding": "x" * (cap - base)})
    assert len(over) > cap
    assert_refused(fn.call("start", "POST", body=over, headers={"X-User-Id": "u"}), 413, "payload_too_large", env, 1, sim)


def test_plain_http_only_for_this_deployments_own_files(fn, sim, env):
    own = env["PUBLIC_FILES_URL"] + "/tasks/00000000-0000-4000-8000-000000000000/person.png"
    assert fn.start({"person_image": own, "garments": [HTTPS + "shirt.png"]}).status == 200
    other = own.replace("127.0.0.1", "localhost")
    assert_refused(fn.start({"person_image": other, "garments": [HTTPS + "shirt.png"]}), 400, "invalid_image", env, 1, sim)


def test_a_malformed_task_id_is_refused_before_any_query(fn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert fn.status("not-a-uuid").status == 404           # not one of ours: no database needed to say so
    assert fn.status(str(uuid.uuid4())).status == 503       # a valid id does reach the database


def test_the_cron_secret_never_appears_in_answers_or_logs(fn, sim, monkeypatch, capsys):
    monkeypatch.setenv("CRON_SECRET", "cr0n-s3cret-value")
    fn.worker(query={"secret": "cr0n-s3cret-valuX"})
    fn.worker(headers={"X-Cron-Secret": "cr0n-s3cret-value"})
    out = capsys.readouterr().out
    assert "cr0n-s3cret" not in out


def test_tokens_and_image_data_are_redacted_from_logged_errors(fn, monkeypatch, capsys):
    from shared import starting

    def explode(*args, **kwargs):
        raise RuntimeError(f"token r8_AbCdEf0123456789 and {PERSON}")

    monkeypatch.setattr(starting, "start", explode)
    assert fn.start(look(1)).status == 500
    out = capsys.readouterr().out
    assert "r8_AbCdEf0123456789" not in out and PERSON.split(",")[1][:40] not in out
    assert "r8_***" in out


HOSTILE_TEXT = [
    "'); DROP TABLE replicate_tasks; --",
    "<script>alert(document.cookie)</script>",
    "../../../../etc/passwd",
    "line one\r\nSet-Cookie: session=stolen",
    "Robert'); DELETE FROM replicate_task_steps WHERE ('1'='1",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_text_in_a_description_is_stored_and_sent_as_plain_text(fn, sim, env, text):
    reply = fn.start({"person_image": PERSON, "garments": [{"image": GARMENTS[0], "description": text}]})
    if "\r" in text:
        assert reply.status == 400 and reply.body["code"] == "invalid_field"
        assert task_count(env) == 0
        return
    assert reply.status == 200
    fn.worker()
    assert sim.created_inputs()[0]["garment_des"] == text
    assert fn.status(reply.body["task_id"]).body["steps"][0]["garment"]["description"] == text
    assert task_count(env) == 1


def test_an_image_that_lies_about_its_type_is_stored_as_what_it_really_is(fn, sim, env):
    from tests.test_start_hardening import jpeg_bytes

    reply = fn.start({"person_image": data_uri(jpeg_bytes(), "image/png"), "garments": GARMENTS[:1]})
    assert reply.status == 200
    person = run_sql(env["DATABASE_URL"], "SELECT person_image FROM replicate_tasks")[0][0]
    assert re.search(r"/person-[0-9a-f]{16}\.jpg$", person)
    from pathlib import Path
    assert (Path(env["LOCAL_STORAGE_DIR"]) / person[len(env["PUBLIC_FILES_URL"]) + 1:]).exists()


@pytest.mark.parametrize("payload", [
    "data:image/png;base64," + "A" * 7 + "=",                              # bad padding
    "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode() + "!!",  # junk after data
    "data:image/png;base64," + "QUFB" * 10 + "\n" + "QUFB",                 # a line break inside
])
def test_malformed_base64_is_a_400(fn, sim, env, payload):
    assert_refused(fn.start({"person_image": payload, "garments": GARMENTS[:1]}), 400, "invalid_image", env, 0, sim)


# --- caps under concurrency: two requests never both take the last place ----------------------------

def meet_here(monkeypatch, module, name, parties=2, timeout=1.0):
    """Makes the first `parties` calls of `module.name` wait for each other (up to `timeout`), so
    concurrent requests reach the cap check together, as a burst of real ones can. A request held
    by a lock never arrives: the other goes on after `timeout`, well inside the 5 s lock timeout."""
    import threading

    original = getattr(module, name)
    barrier = threading.Barrier(parties, timeout=timeout)
    arrived = []

    def wrapper(*args, **kwargs):
        arrived.append(1)
        if len(arrived) <= parties:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:  # the other is held by a lock: as it should be
                pass
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def at_once(*calls):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result(timeout=60) for future in [pool.submit(call) for call in calls]]


def test_simultaneous_starts_by_different_users_stay_within_the_sites_cap(fn, sim, env, monkeypatch):
    from shared import starting

    monkeypatch.setenv("MAX_ACTIVE_TASKS", "1")
    meet_here(monkeypatch, starting, "check_caps")  # both pass their checks before either inserts
    replies = at_once(lambda: fn.start(look(1), user="anna"), lambda: fn.start(look(1), user="bea"))
    assert sorted(reply.status for reply in replies) == [200, 429], replies
    assert [reply.body["code"] for reply in replies if reply.status == 429] == ["service_busy"]
    assert task_count(env) == 1


def test_simultaneous_continues_stay_within_the_users_step_budget(fn, sim, env, monkeypatch, task_factory):
    from shared import actions

    monkeypatch.setenv("START_RATE_PER_USER", "1")
    monkeypatch.setenv("MAX_GARMENTS", "2")  # 2 steps an hour; one already ran
    looks = [task_factory("waiting_continue", user_id="anna") for _ in range(2)]
    run_sql(env["DATABASE_URL"], """INSERT INTO replicate_task_steps (task_id, step, attempt, status, image_url, created_at)
                                    VALUES (%s, 1, 1, 'succeeded', 'https://img/1.png', NOW())""", (looks[0],))
    meet_here(monkeypatch, actions, "check_step_budget")
    replies = at_once(*[lambda task_id=task_id: fn.act(task_id, user="anna") for task_id in looks])
    assert sorted(reply.status for reply in replies) == [200, 429], replies
    assert [reply.body["code"] for reply in replies if reply.status == 429] == ["step_rate_limited"]
    steps = run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_task_steps")[0][0]
    assert steps == 2  # the one before, and one continue's


def test_simultaneous_continues_of_two_users_stay_within_the_sites_step_budget(fn, sim, env, monkeypatch,
                                                                                task_factory):
    from shared import actions

    monkeypatch.setenv("MAX_STEPS_PER_HOUR", "2")  # one step already ran on the site
    looks = [task_factory("waiting_continue", user_id=user) for user in ("anna", "bea")]
    run_sql(env["DATABASE_URL"], """INSERT INTO replicate_task_steps (task_id, step, attempt, status, image_url, created_at)
                                    VALUES (%s, 1, 1, 'succeeded', 'https://img/1.png', NOW())""", (looks[0],))
    meet_here(monkeypatch, actions, "check_step_budget")
    replies = at_once(*[lambda task_id=task_id, user=user: fn.act(task_id, user=user)
                        for task_id, user in zip(looks, ("anna", "bea"))])
    assert sorted(reply.status for reply in replies) == [200, 429], replies
    assert [reply.body["code"] for reply in replies if reply.status == 429] == ["service_busy"]
    assert run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_task_steps")[0][0] == 2
