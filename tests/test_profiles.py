"""Model profiles: each profile's input for steps 1 and 2 through the real functions and the
simulator (which rejects what the real model would), a custom template, and the cost recorded
for each step from its metrics."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from shared import costs, profiles
from shared.db import Database
from shared.profiles import StepImages
from shared.settings import ConfigError, load
from tests.conftest import drive, look, run_sql

CUSTOM_TEMPLATE = json.dumps({"photo": "{person}", "cloth": "{garment}",
                              "words": "{description} as {category}; {prompt_hints}", "steps": 20})


def two_steps(fn, sim) -> tuple[list[dict], list[tuple]]:
    """A 2-garment look driven to the end: the inputs Replicate got and the step rows."""
    body = look(2, prompt_hints="autumn")
    body["garments"][1] = {"image": body["garments"][1], "category": "lower_body", "description": "pleated skirt"}
    task_id = fn.start(body).body["task_id"]
    first = drive(fn, task_id, "waiting_continue")
    assert fn.act(task_id, "continue").status == 200
    drive(fn, task_id, "completed")
    steps = run_sql(fn.database_url, "SELECT step, image_url, model, predict_time_s, cost_usd FROM replicate_task_steps "
                                     "WHERE task_id = %(id)s ORDER BY step", {"id": task_id})
    assert steps[0][1] == first["intermediate_result"]
    return sim.created_inputs(), steps


@pytest.fixture
def fn_db(fn, env):
    fn.database_url = env["DATABASE_URL"]
    return fn


def test_idm_vton_steps_chain_the_stored_image(fn_db, sim):
    inputs, steps = two_steps(fn_db, sim)
    assert [sorted(i) for i in inputs] == [["category", "garm_img", "garment_des", "human_img"]] * 2
    assert inputs[0]["category"] == "upper_body" and inputs[0]["garment_des"] == "autumn"
    assert inputs[1]["human_img"] == steps[0][1]  # step 2 dresses step 1's stored image
    assert inputs[1]["category"] == "lower_body" and inputs[1]["garment_des"] == "pleated skirt. autumn"
    assert sim.snapshot()[0]["version"] == profiles.active(load()).version


def test_nano_banana_runs_through_the_models_endpoint(fn_db, sim, monkeypatch):
    monkeypatch.setenv("MODEL_PROFILE", "nano-banana")
    inputs, steps = two_steps(fn_db, sim)
    assert all(sorted(i) == ["image_input", "output_format", "prompt"] for i in inputs)
    assert inputs[1]["image_input"][0] == steps[0][1]
    assert inputs[1]["image_input"][1] != inputs[0]["image_input"][1]  # garment 2, not garment 1
    assert "pleated skirt" in inputs[1]["prompt"] and "lower body" in inputs[1]["prompt"]
    assert all(word in inputs[0]["prompt"] for word in ("pose", "face", "background", "autumn"))
    assert {p["model"] for p in sim.snapshot()} == {"google/nano-banana"}
    assert {p["version"] for p in sim.snapshot()} == {"hidden"}  # created without a version
    # Billed per output image, whatever the time: 0.039 each.
    assert [(s[2], s[4]) for s in steps] == [("google/nano-banana", Decimal("0.039"))] * 2
    task_id = run_sql(fn_db.database_url, "SELECT task_id FROM replicate_task_steps LIMIT 1")[0][0]
    shown = json.dumps(fn_db.status(task_id).body)
    assert not any(word in shown for word in ("cost", "predict_time", "0.039"))  # shoppers never see it
    assert costs.look_cost_usd(Database(fn_db.database_url), task_id) == Decimal("0.078")


def test_custom_profile_fills_its_template(fn_db, sim, monkeypatch):
    monkeypatch.setenv("MODEL_PROFILE", "custom")
    monkeypatch.setenv("REPLICATE_MODEL", "acme/tryon")
    monkeypatch.setenv("REPLICATE_VERSION", "a" * 64)
    monkeypatch.setenv("MODEL_INPUT_TEMPLATE", CUSTOM_TEMPLATE)
    monkeypatch.setenv("MODEL_PRICE_USD", "0.001")
    inputs, steps = two_steps(fn_db, sim)
    assert inputs[0]["words"] == "top as upper_body; autumn" and inputs[0]["steps"] == 20
    assert inputs[1] == {"photo": steps[0][1], "cloth": inputs[1]["cloth"],
                         "words": "pleated skirt as lower_body; autumn", "steps": 20}
    assert sim.snapshot()[0]["model"] == "acme/tryon" and sim.snapshot()[0]["version"] == "a" * 64
    for _, _, model, predict_time, cost in steps:  # per second of metrics.predict_time
        assert model == "acme/tryon" and predict_time > 0
        assert abs(cost - Decimal("0.001") * Decimal(str(predict_time))) <= Decimal("0.0000005")


def test_a_failed_step_costs_its_time_on_per_second_models_and_nothing_per_image(fn_db, sim, monkeypatch):
    sim.set_faults(outcomes=["failed", "failed"])
    for profile in ("idm-vton", "nano-banana"):
        monkeypatch.setenv("MODEL_PROFILE", profile)
        task_id = fn_db.start(look(1)).body["task_id"]
        drive(fn_db, task_id, "failed")
        (predict_time, cost), = run_sql(fn_db.database_url, "SELECT predict_time_s, cost_usd FROM replicate_task_steps "
                                                            "WHERE task_id = %(id)s", {"id": task_id})
        if profile == "nano-banana":
            assert cost == 0
        else:
            assert predict_time > 0
            assert abs(cost - Decimal(profiles.IDM_VTON_PRICE_PER_SECOND) * Decimal(str(predict_time))) <= Decimal("5e-7")


def step(**changes) -> StepImages:
    values = {"person": "https://x/p.png", "garment": "https://x/g.png", "category": "dresses",
              "description": None, "prompt_hints": None, **changes}
    return StepImages(**values)


def test_cost_arithmetic():
    idm = profiles.active(load({}))
    assert idm.cost_usd(12.5, 1) == Decimal("0.009063")  # 12.5 s x $0.000725, to the micro-dollar
    assert idm.cost_usd(None, 1) is None                  # no metrics: unknown, not free
    banana = profiles.active(load({"MODEL_PROFILE": "nano-banana", "MODEL_PRICE_USD": "0.05"}))
    assert banana.cost_usd(None, 2) == Decimal("0.100000") and banana.cost_usd(30.0, 0) == 0


def test_the_first_estimate_is_the_profile_s_typical_step():
    assert profiles.active(load({})).typical_step_s == 45
    assert profiles.active(load({"MODEL_PROFILE": "nano-banana"})).typical_step_s == 15
    assert profiles.active(load({"MODEL_PROFILE": "nano-banana", "MODEL_TYPICAL_STEP_S": "9"})).typical_step_s == 9


def test_start_estimates_from_the_profile_before_any_history(fn, monkeypatch):
    monkeypatch.setenv("MODEL_PROFILE", "nano-banana")
    assert fn.start(look(2)).body["estimated_time_seconds"] == 2 * 15 + 5


def test_nano_banana_prompt_without_words_names_the_category():
    prompt = profiles.nano_banana_input(step())["prompt"]
    assert "dress shown in the second image" in prompt and "a dresses garment" in prompt


@pytest.mark.parametrize(("env", "says"), [
    ({"MODEL_PROFILE": "dall-e"}, "MODEL_PROFILE must be one of idm-vton, nano-banana, custom"),
    ({"MODEL_PROFILE": "custom", "MODEL_INPUT_TEMPLATE": CUSTOM_TEMPLATE}, "needs REPLICATE_MODEL"),
    ({"MODEL_PROFILE": "custom", "REPLICATE_MODEL": "a/b"}, "needs MODEL_INPUT_TEMPLATE"),
    ({"MODEL_PROFILE": "custom", "REPLICATE_MODEL": "a/b", "MODEL_INPUT_TEMPLATE": "{person}"}, "not valid JSON"),
    ({"MODEL_PROFILE": "custom", "REPLICATE_MODEL": "a/b", "MODEL_INPUT_TEMPLATE": "[]"}, "must be a JSON object"),
    ({"MODEL_PROFILE": "custom", "REPLICATE_MODEL": "a/b",
      "MODEL_INPUT_TEMPLATE": '{"a": "{person}", "b": "{garment}", "c": "{colour}"}'}, "unknown placeholders ['colour']"),
    ({"MODEL_PROFILE": "custom", "REPLICATE_MODEL": "a/b", "MODEL_INPUT_TEMPLATE": '{"a": "{person}"}'},
     "must place {garment}"),
    ({"MODEL_PRICE_USD": "cheap"}, "MODEL_PRICE_USD must be a number"),
    ({"MODEL_PRICE_USD": "-1"}, "zero or more"),
    ({"MODEL_PROFILE": "custom", "MODEL_PRICE_BASIS": "token"}, "MODEL_PRICE_BASIS must be second or image"),
])
def test_a_misconfigured_profile_is_a_clear_config_error(env, says):
    with pytest.raises(ConfigError) as raised:
        profiles.active(load(env))
    assert says in str(raised.value)


def test_a_misconfigured_profile_answers_start_with_503_and_changes_nothing(fn, env, monkeypatch):
    monkeypatch.setenv("MODEL_PROFILE", "custom")
    reply = fn.start(look(1))
    assert (reply.status, reply.body["code"]) == (503, "not_configured")
    assert run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_tasks")[0][0] == 0


BROKEN_SETTINGS = [{"MODEL_PROFILE": "nano_banana"}, {"REPLICATE_BASE_URL": "not-a-url"},
                   {"MODEL_PROFILE": "custom"}, {"STEP_TIMEOUT_S": "ten"}, {"CLAIM_STALE_S": "2"}]


@pytest.mark.parametrize("broken", BROKEN_SETTINGS, ids=lambda broken: next(iter(broken.values())))
def test_a_worker_with_a_broken_setting_answers_503_and_fails_no_look(fn, env, sim, monkeypatch, broken):
    task_id = fn.start(look(1)).body["task_id"]
    with monkeypatch.context() as patch:
        for name, value in broken.items():
            patch.setenv(name, value)
        for _ in range(4):  # more than the launch failures that fail a look
            reply = fn.worker()
            assert (reply.status, reply.body["code"]) == (503, "not_configured"), reply
    assert sim.stats["create_calls"] == 0
    assert fn.status(task_id).body["status"] == "pending"
    assert fn.worker().body["started"] == 1  # fixed: the look goes on


@pytest.mark.parametrize("broken", [*BROKEN_SETTINGS, {"REPLICATE_API_TOKEN": ""}],
                         ids=lambda broken: next(iter(broken.values())) or "no token")
def test_a_continue_with_a_broken_setting_answers_503_and_leaves_the_look_waiting(fn, env, sim, monkeypatch,
                                                                                  task_factory, broken):
    task_id = task_factory("waiting_continue")
    with monkeypatch.context() as patch:
        for name, value in broken.items():
            patch.setenv(name, value)
        reply = fn.act(task_id)
    assert (reply.status, reply.body["code"]) == (503, "not_configured"), reply
    view = fn.status(task_id).body
    assert (view["status"], view["current_step"]) == ("waiting_continue", 1)  # pressing Continue again works
    assert fn.act(task_id).status == 200


@pytest.mark.parametrize("broken", BROKEN_SETTINGS[:3], ids=lambda broken: next(iter(broken.values())))
def test_a_checker_with_a_broken_setting_answers_503(fn, env, sim, monkeypatch, broken):
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    assert sim.wait_idle(30)
    with monkeypatch.context() as patch:
        for name, value in broken.items():
            patch.setenv(name, value)
        reply = fn.checker()
    assert (reply.status, reply.body["code"]) == (503, "not_configured")
    assert drive(fn, task_id, "completed")["status"] == "completed"  # fixed: the step ends as it would have


def test_a_setting_the_launch_alone_reads_hands_the_claim_back(fn, env, sim, monkeypatch):
    """The safety net behind check_configured: a ConfigError met while creating the prediction is
    a 503 that gives the claim back, not a launch failure counted against the look."""
    from shared import launching
    from shared.settings import ConfigError

    task_id = fn.start(look(1)).body["task_id"]
    with monkeypatch.context() as patch:
        patch.setattr(launching, "step_input", lambda *args: (_ for _ in ()).throw(ConfigError("broken")))
        for _ in range(4):
            reply = fn.worker()
            assert (reply.status, reply.body["code"]) == (503, "not_configured"), reply
    assert run_sql(env["DATABASE_URL"], "SELECT launch_failures, claim_token FROM replicate_tasks") == [(0, None)]
    assert sim.stats["create_calls"] == 0
    assert fn.worker().body["started"] == 1
    assert fn.status(task_id).body["status"] == "processing"


def test_with_replicate_misconfigured_cancel_and_force_check_still_answer_the_look(fn, env, sim, monkeypatch,
                                                                                  task_factory):
    running = task_factory("processing")
    monkeypatch.setenv("REPLICATE_BASE_URL", "not-a-url")
    checked = fn.status(running, force=True)
    assert (checked.status, checked.body["status"]) == (200, "processing")
    canceled = fn.act(running, "cancel")
    assert (canceled.status, canceled.body["status"]) == (200, "failed")  # saved; the step deadline ends it


def test_a_misconfigured_worker_still_finishes_idle_looks(fn, env, sim, monkeypatch, task_factory):
    idle = task_factory("waiting_continue")
    run_sql(env["DATABASE_URL"], "UPDATE replicate_tasks SET updated_at = LOCALTIMESTAMP - INTERVAL '2 days'")
    monkeypatch.setenv("MODEL_PROFILE", "nano_banana")
    assert fn.worker().status == 503
    assert fn.status(idle).body["status"] == "completed"


def test_a_custom_template_fills_nested_values_and_keeps_other_types():
    template = profiles.parse_template(json.dumps(
        {"images": ["{person}", "{garment}"], "opts": {"label": "{category}", "seed": 7, "on": True}}))
    filled = profiles.fill_template(template, step(prompt_hints="bright"))
    assert filled == {"images": ["https://x/p.png", "https://x/g.png"],
                      "opts": {"label": "dresses", "seed": 7, "on": True}}


def test_make_run_with_the_nano_banana_profile_completes_a_look(tmp_path):
    """`make run ARGS="--model-profile nano-banana"`: the devserver, its simulator and its cron."""
    import requests

    from tests.conftest import GARMENTS, PERSON, start_devserver, wait_until

    server = start_devserver(tmp_path, "--model-profile", "nano-banana", "--sim-seconds", "0.5",
                             "--cron-interval", "0.5")
    try:
        headers = {"X-User-Id": "banana-user"}
        created = requests.post(server.url + "/start", headers=headers,
                                json={"person_image": PERSON, "garments": GARMENTS[:1]}, timeout=10)
        assert created.status_code == 200, created.text
        task_id = created.json()["task_id"]
        final = wait_until(lambda: (v := requests.get(server.url + "/status", params={"task_id": task_id},
                                                      headers=headers, timeout=10).json())["status"]
                           in ("completed", "failed") and v, timeout=60)
        assert final["status"] == "completed", final
        created_with = requests.get(server.sim_url + "/_sim/predictions", timeout=10).json()
        assert [p["model"] for p in created_with] == ["google/nano-banana"]
        assert sorted(created_with[0]["sim_input"]) == ["image_input", "output_format", "prompt"]
    finally:
        assert server.stop() == 0
