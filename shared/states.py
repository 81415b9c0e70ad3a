"""The task's states and the user's actions on them: one table that the status view's `actions`,
the 409 `wrong_state` answers and the conditional SQL in `shared.queries` all follow.

The worker and the checker move tasks too (pending -> processing -> waiting_continue | completed
| failed); their moves are the `Outcome` and `LaunchOutcome` values their runs report.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class StrValue(str, Enum):
    """A str Enum that prints as its value (in f-strings, logs and SQL parameters)."""

    def __str__(self) -> str:
        return str(self.value)


class Status(StrValue):
    """A look's status, as stored in replicate_tasks.status (the seed's five)."""

    PENDING = "pending"
    PROCESSING = "processing"
    WAITING_CONTINUE = "waiting_continue"
    COMPLETED = "completed"
    FAILED = "failed"


UNFINISHED = (Status.PENDING, Status.PROCESSING, Status.WAITING_CONTINUE)


class Action(StrValue):
    """A button the user can press (POST /continue `action`)."""

    CONTINUE = "continue"
    FINISH = "finish"
    RETRY = "retry"
    CANCEL = "cancel"
    # Not moves of the look (no transition): a read-only link to it, and revoking every such link.
    SHARE = "share"
    UNSHARE = "unshare"


SHARING = (Action.SHARE, Action.UNSHARE)


# NamedTuple, not a dataclass, here and in the other values a status poll or a start builds:
# dataclasses imports inspect (and ast, dis, tokenize), 8 ms of every cold start.
class Transition(NamedTuple):
    source: Status
    action: Action
    target: Status
    needs_image: bool = False  # only once a step produced an image (finish after a failure)

    @property
    def starts_step(self) -> bool:
        """The move starts a paid prediction (counted against the hourly step budgets)."""
        return self.target is Status.PROCESSING


# In the order the status view lists a state's actions.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(Status.WAITING_CONTINUE, Action.CONTINUE, Status.PROCESSING),
    Transition(Status.WAITING_CONTINUE, Action.FINISH, Status.COMPLETED),
    Transition(Status.FAILED, Action.RETRY, Status.PROCESSING),
    Transition(Status.FAILED, Action.FINISH, Status.COMPLETED, needs_image=True),
    Transition(Status.PENDING, Action.CANCEL, Status.FAILED),
    Transition(Status.PROCESSING, Action.CANCEL, Status.FAILED),
)

# What a 409 tells the user about when an action works.
WHEN_ALLOWED = {
    Action.CONTINUE: "Continue works when a step is ready and waiting for you.",
    Action.FINISH: "Finish works when a step is ready, or after a failure once at least one step succeeded.",
    Action.RETRY: "Retry works after a step failed.",
    Action.CANCEL: "Cancel works while the look is queued or a step is running.",
}


def transition(status: Status, action: Action, has_image: bool) -> Transition | None:
    """The move `action` makes from `status`, or None when it is not allowed there."""
    for move in TRANSITIONS:
        if move.source == status and move.action == action and (has_image or not move.needs_image):
            return move
    return None


def allowed_actions(status: Status, has_image: bool) -> list[Action]:
    return [move.action for move in TRANSITIONS
            if move.source == status and (has_image or not move.needs_image)]


class Outcome(StrValue):
    """What one check of a running prediction did (`shared.checking.apply`)."""

    RUNNING = "running"      # still running: nothing changed
    READY = "ready"          # the step succeeded: waiting_continue
    COMPLETED = "completed"  # the last step succeeded: completed
    FAILED = "failed"        # the step ended for good: failed
    STALE = "stale"          # the task moved on meanwhile: nothing changed
    ERROR = "error"          # transient trouble: the next ping tries again
    SKIPPED = "skipped"      # this run had no time left to look

    @property
    def moved(self) -> bool:
        """The task's row may have changed."""
        return self not in (Outcome.RUNNING, Outcome.ERROR, Outcome.SKIPPED)


class ErrorCode(StrValue):
    """Why a look failed, for frontends to translate (stored in error_code beside the English
    error_message; the model's own words go to error_detail)."""

    MODEL_FAILED = "model_failed"              # the prediction ended in `failed`
    CANCELED_BY_USER = "canceled_by_user"      # Cancel was pressed
    CANCELED = "canceled"                      # canceled at Replicate, not by us
    STEP_TIMEOUT = "step_timeout"              # STEP_TIMEOUT_S passed, or Replicate's deadline
    OUTPUT_REMOVED = "output_removed"          # the output expired before we stored it
    NO_OUTPUT = "no_output"                    # succeeded without an image
    OUTPUT_UNUSABLE = "output_unusable"        # the output could not be downloaded or read
    PREDICTION_LOST = "prediction_lost"        # Replicate no longer knows the prediction
    REPLICATE_REJECTED = "replicate_rejected"  # Replicate refused to create it (4xx)
    LAUNCH_FAILED = "launch_failed"            # our own launch kept failing: quarantined
    INPUT_MISSING = "input_missing"            # the step's input image or garment is gone


class LaunchOutcome(StrValue):
    """What one attempt to create a step's prediction did (`shared.launching.record_launch`)."""

    LAUNCHED = "launched"  # recorded: the step is running
    FAILED = "failed"      # Replicate refused for good: the task failed
    DEFERRED = "deferred"  # transient: the claim is handed back for a later ping
    LOST = "lost"          # the task moved on meanwhile: the prediction was canceled
