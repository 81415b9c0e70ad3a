"""Structured logs: one JSON line per invocation and per transition, so one look can be followed
end to end by its task_id in a platform's log search."""

import json

from tests.conftest import drive, look


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_a_look_can_be_followed_end_to_end_by_task_id(fn, sim, capsys):
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    fn.act(task_id)
    drive(fn, task_id, "completed")
    logged = lines(capsys)
    mine = [entry for entry in logged if entry.get("task_id") == task_id and entry["event"] == "transition"]
    assert [(entry["from"], entry["to"]) for entry in mine] == [
        (None, "pending"),
        ("pending", "processing"),            # the worker claimed it
        ("processing", "processing"),         # step 1's prediction created
        ("processing", "waiting_continue"),
        ("waiting_continue", "processing"),   # Continue
        ("processing", "processing"),         # step 2's prediction created
        ("processing", "completed"),
    ]
    assert [entry["function"] for entry in mine] == ["start", "worker", "worker", "checker", "continue", "continue",
                                                    "checker"]
    assert all(entry["request_id"] for entry in mine)
    created = [entry for entry in mine if entry.get("note") == "prediction created"]
    assert [entry["step"] for entry in created] == [1, 2] and all(entry["prediction_id"] for entry in created)


def test_every_invocation_ends_with_one_line_with_its_duration(fn, sim, capsys):
    task_id = fn.start(look(1)).body["task_id"]
    fn.status(task_id)
    fn.worker()
    invocations = [entry for entry in lines(capsys) if entry["event"] == "invocation"]
    assert [(entry["function"], entry["status"]) for entry in invocations] == [
        ("start", 200), ("status", 200), ("worker", 200)]
    assert all(entry["duration_ms"] >= 0 and entry["request_id"] for entry in invocations)


def test_logs_carry_no_image_data_or_tokens(fn, sim, env, capsys):
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    out = capsys.readouterr().out
    assert "base64," not in out.replace(";base64,…", "")
    assert env["REPLICATE_API_TOKEN"] not in out
