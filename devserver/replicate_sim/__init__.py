"""A local Replicate: the part of Replicate's HTTP API this project uses, as Replicate documents it.

Runs alone (`python -m devserver.replicate_sim --port 8100`) or inside the devserver and tests.

- `POST /v1/predictions` (by version: bare id, `owner/name:id`, or `owner/name`) and
  `POST /v1/models/{owner}/{name}/predictions`; `Prefer: wait[=n]`; `Cancel-After`.
- `GET /v1/predictions/{id}`, `POST /v1/predictions/{id}/cancel`, `GET /v1/predictions` (newest
  first, 100 a page, `created_after`/`created_before`, absolute `next`/`previous` cursor URLs),
  `GET /v1/webhooks/default/secret`.
- Models (schemas.py): `cuuupid/idm-vton` by version (human_img, garm_img required; garment_des,
  category upper_body|lower_body|dresses, crop, seed, steps, force_dc, mask_only);
  `google/nano-banana` only through its models endpoint (prompt required, image_input, an array of
  image URLs, output_format jpg|png); any other `owner/name:version` is a custom model that takes
  any input object. Missing, unknown or mistyped fields: 422 `Input validation failed` with
  `invalid_fields`, as Replicate answers.
- Predictions go `starting` -> `processing` -> `succeeded` over `duration_s`, with
  `metrics.predict_time`. While IDM-VTON runs, its `logs` grow by tqdm lines
  (` 40%|████      | 12/30 [00:04<00:06,  2.9it/s]`); nano-banana prints no progress. Outputs are
  real images (render.py: the garment composited onto the person when both can be read, else a
  generated figure), served at `/files/...` and deleted `output_ttl_s` after completion (then
  `output` is null and `data_removed` true, as Replicate does an hour after an API prediction).
  nano-banana's output is one URI of the asked `output_format` (jpg by default).
- Bearer (or Token) auth; errors as `application/problem+json`.
- Signed webhooks (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`),
  retried a few times with the same `webhook-id`.

Fault knobs for tests (`sim.set_faults(name=value)` in-process, or `POST /_sim/faults` with a
JSON object; state.py's `Faults` is the list; `POST /_sim/reset` clears them):
- `create_failures`, `cancel_failures`, `read_failures`: lists of `{"status", "retry_after"?,
  "detail"?}`, one consumed per matching call, answered instead of it.
- `create_then_fail`: the same kind of list, but the prediction IS created (and runs) before the
  failure is answered: a create whose answer was lost, for "created but not recorded" tests.
- `read_failure_rate` (0..1) with `read_failure_status` (503): random GET/list failures.
- `latency_s`: a pause before every API answer.
- `slow_drip_s`: API answers send their headers at once, then the body one byte every N
  seconds (a client without a wall-clock deadline hangs for len(body) * N s);
  `slow_drip_files`: downloads from `/files/` drip too.
- `outcomes` (per create: succeeded|failed|aborted|canceled), `default_outcome`,
  `failure_error`, `duration_s`, `output_format` (string|list), `webhook_drop`, `render_outputs`.
Inspection: `GET /_sim/stats` (call counters), `GET /_sim/predictions` (every prediction, oldest
first, with `sim_input` and `sim_webhook`: the input and webhook URL, query included, it was
created with), `POST /_sim/forget/{id}` (GET answers 404 after), `POST /_sim/expire` (remove
finished outputs now). The same as methods on `Simulator`: stats, snapshot(), forget(),
expire_outputs(), created_inputs(), wait_idle().

Modules: state.py (faults, predictions, errors, parsers), schemas.py (models and input
validation), simulator.py (the engine and the API calls), render.py (output images), webhooks.py
(signing and delivery), http.py (the HTTP server and `main`).
"""

from devserver.replicate_sim.http import main
from devserver.replicate_sim.render import placeholder_png, render_try_on
from devserver.replicate_sim.schemas import IDM_VTON, IDM_VTON_VERSION, NANO_BANANA, validate_input
from devserver.replicate_sim.simulator import Simulator
from devserver.replicate_sim.state import Faults, SimError, SimPrediction, parse_duration

__all__ = [
           "IDM_VTON",
           "IDM_VTON_VERSION",
           "NANO_BANANA",
           "Faults",
           "SimError",
           "SimPrediction",
           "Simulator",
           "main",
           "parse_duration",
           "placeholder_png",
           "render_try_on",
           "validate_input",
]
