"""`python -m monitor`: the on-call view of the try-on tasks (DATABASE_URL).

    python -m monitor                      the seed's two monitoring queries, as tables
    python -m monitor --watch [SECONDS]    the same, refreshed (Ctrl-C to stop)
    python -m monitor stuck [--minutes N]  tasks that should have moved and did not, and why
    python -m monitor redrive ID... | --stuck [--yes]
                                           make them due now: the next worker/checker ping takes them
    python -m monitor fail ID... --reason "..." [--yes] [--no-cancel]
                                           end them as failed with a reason the user will see,
                                           canceling their predictions (REPLICATE_API_TOKEN)
    python -m monitor spend [--since 24h]  Replicate spend per day, per user and per look (top 10),
                                           and per outcome (succeeded, failed, canceled)

Every command that changes data shows what it will change and asks first, unless --yes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg2

from shared import completion, db, monitoring, profiles, queries
from shared.settings import ConfigError, load
from shared.states import ErrorCode


def progress(step, total, width: int = 10) -> str:
    step, total = step or 0, total or 0
    if total <= 0:
        return "step 0/0"
    filled = round(width * min(step, total) / total)
    return f"step {step}/{total} " + "■" * filled + "□" * (width - filled)


def table(headers: list[str], rows: list[list], empty: str) -> str:
    if not rows:
        return f"  ({empty})"
    cells = [[str("" if value is None else value) for value in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]
    def line(values):
        return "  " + "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def overview(cur) -> str:
    cur.execute(monitoring.SEED_ACTIVE)
    active = [[r[0], r[1], progress(r[2], r[3]), f"{int(r[4])} s" if r[4] is not None else "?"] for r in cur.fetchall()]
    cur.execute(monitoring.SEED_WAITING)
    waiting = [[r[0], r[1], progress(r[2], r[3])] for r in cur.fetchall()]
    cur.execute(monitoring.NOT_STARTED, {"after_s": NOT_STARTED_AFTER_S})
    not_started = [[r[0], progress(r[1], r[2]), f"{int(r[4])} s", r[3], f"{int(r[5])} s"] for r in cur.fetchall()]
    cur.execute(monitoring.SLOW_STEPS, {"typical_s": _typical_step_s()})
    slow = [[r[0], progress(r[1], r[2]), f"{int(r[3])} s", f"{int(r[4])} s"] for r in cur.fetchall()]
    cur.execute(monitoring.FAILURES, {"since_s": 86400})
    failures = [[r[0], r[1], r[2], f"{int(r[3])} s ago", _cut(r[4])] for r in cur.fetchall()]
    cur.execute(monitoring.WEBHOOK_TROUBLE, {"give_up_s": completion.GIVE_UP_AFTER_S})
    webhooks = [[r[0], r[1], r[2], r[3], r[4] if r[4] == "given up" else f"retry in {max(int(r[5]), 0)} s", r[6]]
                for r in cur.fetchall()]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return "\n".join([
        f"Active tasks ({len(active)})  {stamp}",
        table(["task", "status", "progress", "since last change"], active, "none"),
        "",
        f"Waiting for the user ({len(waiting)})",
        table(["task", "user", "progress"], waiting, "none"),
        "",
        f"Steps not yet created at Replicate after {NOT_STARTED_AFTER_S} s ({len(not_started)}; "
        "launch_deferred in the log says why)",
        table(["task", "progress", "trying for", "broken tries", "next try in"], not_started, "none"),
        "",
        f"Steps running over twice their usual time ({len(slow)}; check_deferred in the log says if "
        "their reads fail)",
        table(["task", "progress", "running for", "usual (p95)"], slow, "none"),
        "",
        f"Steps that failed in the last 24 h, by error_code ({sum(r[1] for r in failures)}; user cancels not counted)",
        table(["error_code", "steps", "looks", "latest", "latest error"], failures, "none"),
        "",
        f"Completion webhooks not delivered ({len(webhooks)})",
        table(["webhook-id", "task", "event", "tries", "state", "last error"], webhooks, "none"),
    ])


NOT_STARTED_AFTER_S = 60  # a create normally takes a second or two; a minute means trouble


def _typical_step_s() -> int:
    """The profile's typical step, for before any step has succeeded; the monitor needs only
    DATABASE_URL, so a profile the functions would refuse still gets the usual 45 s."""
    try:
        return profiles.active(load()).typical_step_s
    except ConfigError:
        return 45


def _cut(text: str | None, width: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def stuck_rows(cur, minutes: float) -> list[tuple]:
    cur.execute(monitoring.STUCK, {"after_s": minutes * 60, "step_timeout_s": load().step_timeout_s})
    return cur.fetchall()


def show_stuck(rows) -> str:
    return table(["task", "status", "progress", "since last change", "why"],
                 [[r[0], r[1], progress(r[2], r[3]), f"{int(r[5])} s", r[6]] for r in rows], "nothing is stuck")


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    print(f"{question} [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def targets(cur, args) -> list[str]:
    if getattr(args, "stuck", False):
        return [row[0] for row in stuck_rows(cur, args.minutes)]
    return list(dict.fromkeys(args.ids))


def redrive(cur, args) -> int:
    ids = targets(cur, args)
    if not ids:
        print("Nothing to re-drive.")
        return 0
    print("Re-drive (the next worker/checker ping takes them first):\n  " + "\n  ".join(ids))
    if not confirm(f"Re-drive {len(ids)} task(s)?", args.yes):
        print("Nothing changed.")
        return 1
    live_claim_s = 2 * load().replicate_timeout_s
    done = 0
    for task_id in ids:
        cur.execute(monitoring.REDRIVE, {"id": task_id, "live_claim_s": live_claim_s})
        row = cur.fetchone()
        if row is None:
            print(f"  {task_id}: not re-driven (finished, waiting for the user, unknown, or its claim is live)")
        else:
            done += 1
            print(f"  {task_id}: due now ({row[1]})")
    print(f"Re-drove {done} of {len(ids)}.")
    return 0


def fail(cur, args) -> int:

    ids = targets(cur, args)
    if not ids:
        print("Nothing to fail.")
        return 0
    api = None
    if not args.no_cancel:
        api = _replicate()
        cur.execute(monitoring.RUNNING_PREDICTIONS, {"ids": ids})
        if api is None and cur.fetchall():
            print("REPLICATE_API_TOKEN is not set, so their running predictions cannot be canceled: they would "
                  "run on and be billed. Set it, or pass --no-cancel to fail the looks anyway.")
            return 2
    print(f'Fail with the reason "{args.reason}":\n  ' + "\n  ".join(ids))
    if not confirm(f"Fail {len(ids)} task(s)? Users will see the reason and can press Retry.", args.yes):
        print("Nothing changed.")
        return 1
    done = 0
    for task_id in ids:
        cur.execute(queries.CANCEL, {"id": task_id, "error": args.reason, "error_code": ErrorCode.CANCELED.value})
        columns = [c.name for c in cur.description]
        row = cur.fetchone()
        if row is None:
            print(f"  {task_id}: not changed (not pending or processing, or unknown)")
            continue
        done += 1
        prediction_id = dict(zip(columns, row))["prediction_id"]
        note = ""
        if prediction_id and api is not None:
            from shared.launching import cancel_quietly

            canceled = cancel_quietly(api, prediction_id)
            note = ", prediction canceled" if canceled else ", prediction NOT canceled (see log)"
        print(f"  {task_id}: failed{note}")
    print(f"Failed {done} of {len(ids)}.")
    return 0


SPAN_UNITS = {"m": 60, "h": 3600, "d": 86400}


def span_seconds(text: str) -> float:
    """`90m`, `24h`, `7d` -> seconds (argparse type)."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in SPAN_UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span such as 90m, 24h or 7d")
    try:
        amount = float(text[:-1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span such as 90m, 24h or 7d") from None
    if amount <= 0:
        raise argparse.ArgumentTypeError("the span must be positive")
    return amount * SPAN_UNITS[text[-1]]


def dollars(value) -> str:
    return f"${value:,.4f}"


def spend(cur, since_label: str, since_s: float, top: int = 10) -> str:
    params = {"since_s": since_s, "top": top}
    cur.execute(monitoring.SPEND_PER_DAY, params)
    days = cur.fetchall()
    total = sum((row[3] for row in days), start=0)
    unpriced = sum(row[2] for row in days)
    cur.execute(monitoring.SPEND_PER_USER, params)
    users = [[r[0], r[1], r[2], dollars(r[3])] for r in cur.fetchall()]
    cur.execute(monitoring.SPEND_PER_LOOK, params)
    looks = [[r[0], r[1], r[2], r[3], dollars(r[4])] for r in cur.fetchall()]
    cur.execute(monitoring.SPEND_PER_OUTCOME, params)
    outcomes = [[r[0], r[1], dollars(r[2])] for r in cur.fetchall()]
    note = f" ({unpriced} step(s) without a recorded cost)" if unpriced else ""
    return "\n".join([
        f"Spend on steps that ended in the last {since_label}: {dollars(total)}{note}",
        "",
        "Per day (UTC)",
        table(["day", "steps", "unpriced", "cost"], [[r[0], r[1], r[2], dollars(r[3])] for r in days], "no steps"),
        "",
        f"Per user (top {top})",
        table(["user", "looks", "steps", "cost"], users, "no steps"),
        "",
        f"Per look (top {top})",
        table(["look", "user", "status", "steps", "cost"], looks, "no steps"),
        "",
        "Per outcome",
        table(["outcome", "steps", "cost"], outcomes, "no steps"),
    ])


def _replicate():
    if not load().replicate_api_token:
        return None
    from shared.replicate_api import ReplicateAPI

    return ReplicateAPI(load())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor", description=__doc__.split("\n")[0])
    parser.add_argument("--watch", nargs="?", const=5.0, type=float, metavar="SECONDS",
                        help="refresh every SECONDS (5) until Ctrl-C")
    parser.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command")
    stuck = commands.add_parser("stuck", help="tasks that should have moved and did not")
    stuck.add_argument("--minutes", type=float, default=10.0)
    for name, help_text in (("redrive", "make tasks due now"), ("fail", "end tasks as failed with a reason")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("ids", nargs="*", metavar="TASK_ID")
        command.add_argument("--stuck", action="store_true", help="every task `stuck` lists")
        command.add_argument("--minutes", type=float, default=10.0)
        command.add_argument("--yes", action="store_true", help="do not ask")
        if name == "fail":
            command.add_argument("--reason", required=True, help="the sentence the user will see")
            command.add_argument("--no-cancel", action="store_true",
                                 help="do not cancel running predictions at Replicate (they run on and are billed)")
    spend_parser = commands.add_parser("spend", help="Replicate spend per day, user, look and outcome")
    spend_parser.add_argument("--since", default="24h", help="how far back: 90m, 24h, 7d (24h)")
    args = parser.parse_args(argv)
    if args.command == "spend":
        try:
            args.since_s = span_seconds(args.since)
        except argparse.ArgumentTypeError as error:
            parser.error(f"--since: {error}")

    dsn = load().database_url
    if not dsn:
        print("DATABASE_URL is not set: point it at the try-on database.", file=sys.stderr)
        return 2
    if args.command in ("redrive", "fail") and not args.ids and not args.stuck:
        parser.error(f"{args.command} needs task ids or --stuck")
    if args.watch and args.command is None:
        return watch(dsn, args.watch, args.iterations)
    try:
        conn = _connect(dsn)
    except psycopg2.OperationalError as error:
        print(f"Cannot reach the database: {db.describe(error, dsn)}", file=sys.stderr)
        return 2
    try:
        with conn.cursor() as cur:
            if args.command == "stuck":
                rows = stuck_rows(cur, args.minutes)
                print(f"Stuck for more than {args.minutes:g} minutes ({len(rows)})\n{show_stuck(rows)}")
                return 0
            if args.command == "spend":
                print(spend(cur, args.since, args.since_s))
                return 0
            if args.command == "redrive":
                return redrive(cur, args)
            if args.command == "fail":
                return fail(cur, args)
            print(overview(cur), flush=True)
            return 0
    except KeyboardInterrupt:
        return 0
    finally:
        conn.close()


def watch(dsn: str, seconds: float, iterations: int = 0) -> int:
    """The overview every `seconds` until Ctrl-C; a database that goes away (a restart, a failover)
    is said on screen and reconnected to on the next refresh."""
    conn = None
    shown = 0
    try:
        while True:
            if sys.stdout.isatty():
                print("\033[2J\033[H", end="")
            try:
                if conn is None or conn.closed:
                    conn = _connect(dsn)
                with conn.cursor() as cur:
                    print(overview(cur), flush=True)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  the database is unreachable, trying again in "
                      f"{seconds:g} s: {db.describe(error, dsn)}", flush=True)
                if conn is not None:
                    conn.close()
                conn = None
            shown += 1
            if iterations and shown >= iterations:
                return 0
            print("")
            time.sleep(seconds)
    except KeyboardInterrupt:
        return 0
    finally:
        if conn is not None:
            conn.close()


def _connect(dsn: str):
    # Ages are NOW() minus the seed's zone-less timestamps, which hold the server's local time: an
    # operator's own PGTZ would shift every age by hours.
    os.environ.pop("PGTZ", None)
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="tryon-monitor")
    conn.autocommit = True
    return conn


if __name__ == "__main__":
    sys.exit(main())
