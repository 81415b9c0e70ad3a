"""What a step cost (recorded when it ends, from the site's profile) and what a look cost (for the
completion webhook). Never shown to shoppers."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared import queries
from shared.db import Database
from shared.profiles import Profile

if TYPE_CHECKING:  # the completion webhook sums costs without importing the replicate client
    from shared.replicate_api import Prediction


def output_images(prediction: Prediction) -> int:
    """How many images a per-image model billed: those of a succeeded prediction's output."""
    if prediction.status != "succeeded":
        return 0
    output = prediction.output
    if isinstance(output, str):
        return 1 if output else 0
    if isinstance(output, list):
        return sum(1 for item in output if isinstance(item, str) and item)
    return 0


def step_spend(profile: Profile, prediction: Prediction | None) -> dict[str, Any]:
    """The step row's model, predict_time_s and cost_usd for a prediction that ended (None: unknown)."""
    if prediction is None:
        return {"model": profile.model, "predict_time_s": None, "cost_usd": None}
    return {
        "model": prediction.model or profile.model,
        "predict_time_s": prediction.predict_time_s,
        "cost_usd": profile.cost_usd(prediction.predict_time_s, output_images(prediction)),
    }


# A step the user canceled, costed from the cancel's answer (once: a step already costed keeps it).
# Here, not in queries.py: only the Cancel button runs it, and queries.py is at its size limit.
CANCELED_STEP_SPEND = """
UPDATE replicate_task_steps
SET model = COALESCE(model, %(model)s), predict_time_s = %(predict_time_s)s, cost_usd = %(cost_usd)s
WHERE prediction_id = %(prediction_id)s AND status = 'canceled' AND cost_usd IS NULL
"""


def record_canceled_spend(db: Database, profile: Profile, prediction: Prediction) -> None:
    """Replicate bills a canceled prediction for the seconds it ran: recorded when its cancel
    answered with metrics.predict_time; otherwise the step's cost stays unknown (NULL)."""
    if prediction.predict_time_s is None:
        return
    db.all(CANCELED_STEP_SPEND, {"prediction_id": prediction.id, **step_spend(profile, prediction)})


def look_cost_usd(db: Database, task_id: str) -> Decimal | None:
    """The sum of every attempt's recorded cost for one look (failed and retried ones too);
    None when no step has a recorded cost."""
    cost = db.scalar(queries.LOOK_COST, {"id": task_id})
    return None if cost is None else Decimal(cost)
