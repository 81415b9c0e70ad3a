"""Model profiles (MODEL_PROFILE): which Replicate model dresses a step, how a step becomes its
input, what its license allows, what a run costs, and how long a step typically takes.

Step k always sends the previous step's image and garment k; only the input's shape differs.
Prices are settings (README's table) with these defaults, read from Replicate's model and
pricing pages on PRICES_READ_ON; Replicate changes them, so an operator checks before trusting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, NamedTuple

from shared.settings import ConfigError, Settings
from shared.task import CATEGORY_WORDS

PRICES_READ_ON = "2025-10-01"
# IDM-VTON runs on an Nvidia A40 (Large): billed per second of metrics.predict_time.
IDM_VTON_PRICE_PER_SECOND = "0.000725"
# google/nano-banana is billed per output image, whatever the time.
NANO_BANANA_PRICE_PER_IMAGE = "0.039"
NANO_BANANA_MODEL = "google/nano-banana"
PLACEHOLDERS = ("person", "garment", "category", "description", "prompt_hints")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

PriceBasis = Literal["second", "image"]


class StepImages(NamedTuple):
    """What one step dresses: the current image (the photo, or the previous step's result) and
    garment k with its words."""

    person: str
    garment: str
    category: str
    description: str | None
    prompt_hints: str | None


class Profile(NamedTuple):
    name: str
    model: str               # owner/name
    version: str             # empty: run through the models endpoint (official models)
    license: str
    price_basis: PriceBasis  # per second of metrics.predict_time, or per output image
    price_usd: Decimal
    typical_step_s: int      # the first estimate, before there is any history
    to_input: Callable[[StepImages], dict[str, Any]]

    def cost_usd(self, predict_time_s: float | None, output_images: int) -> Decimal | None:
        """What Replicate bills for one prediction; None when the time it ran is unknown."""
        if self.price_basis == "image":
            return _to_micro_dollars(self.price_usd * output_images)
        if predict_time_s is None:
            return None
        return _to_micro_dollars(self.price_usd * Decimal(str(predict_time_s)))


def _to_micro_dollars(amount: Decimal) -> Decimal:
    """The step row keeps NUMERIC(12, 6)."""
    return amount.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def idm_vton_input(step: StepImages) -> dict[str, Any]:
    words = [text for text in (step.description, step.prompt_hints) if text]
    return {
        "human_img": step.person,
        "garm_img": step.garment,
        "garment_des": ". ".join(words) or CATEGORY_WORDS[step.category],
        "category": step.category,
    }


def nano_banana_prompt(step: StepImages) -> str:
    garment = CATEGORY_WORDS[step.category]
    described = f"{garment} ({step.description})" if step.description else garment
    prompt = (f"Dress the person in the first image in the {described} shown in the second image, "
              f"as {_article(step.category)} {step.category.replace('_', ' ')} garment. "
              "Keep the person, their pose, face, body and the background exactly as they are; "
              "change only the clothing the garment replaces.")
    return f"{prompt} {step.prompt_hints}" if step.prompt_hints else prompt


def _article(category: str) -> str:
    return "an" if category[0] in "aeiou" else "a"


def nano_banana_input(step: StepImages) -> dict[str, Any]:
    return {"prompt": nano_banana_prompt(step), "image_input": [step.person, step.garment], "output_format": "png"}


def parse_template(raw: str) -> dict[str, Any]:
    """MODEL_INPUT_TEMPLATE: a JSON object whose strings may hold {person}, {garment}, {category},
    {description} and {prompt_hints}; it must use {person} and {garment}, or steps cannot chain."""
    try:
        template = json.loads(raw)
    except ValueError as error:
        raise ConfigError(f"MODEL_INPUT_TEMPLATE is not valid JSON ({error})") from None
    if not isinstance(template, dict) or not template:
        raise ConfigError("MODEL_INPUT_TEMPLATE must be a JSON object of the model's input fields")
    used = set(_placeholders(template))
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        raise ConfigError(f"MODEL_INPUT_TEMPLATE uses unknown placeholders {unknown}; "
                          f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    missing = [name for name in ("person", "garment") if name not in used]
    if missing:
        raise ConfigError(f"MODEL_INPUT_TEMPLATE must place {' and '.join('{' + m + '}' for m in missing)} "
                          "somewhere, or the model never sees the images")
    return template


def _placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [name for item in value.values() for name in _placeholders(item)]
    if isinstance(value, list):
        return [name for item in value for name in _placeholders(item)]
    return []


def fill_template(template: Any, step: StepImages) -> Any:
    values = {"person": step.person, "garment": step.garment, "category": step.category,
              "description": step.description or CATEGORY_WORDS[step.category],
              "prompt_hints": step.prompt_hints or ""}
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if isinstance(template, dict):
        return {key: fill_template(item, step) for key, item in template.items()}
    if isinstance(template, list):
        return [fill_template(item, step) for item in template]
    return template


def _price(settings: Settings, default: str) -> Decimal:
    raw = settings.model_price_usd or default
    try:
        price = Decimal(raw)
    except ArithmeticError:
        raise ConfigError(f"MODEL_PRICE_USD must be a number of dollars, got {raw!r}") from None
    if not price.is_finite() or price < 0:
        raise ConfigError("MODEL_PRICE_USD must be zero or more")
    return price


def active(settings: Settings) -> Profile:
    """The site's profile from MODEL_PROFILE; ConfigError (a 503 with a sentence) if misconfigured."""
    name = settings.model_profile
    if name == "idm-vton":
        return Profile(name, settings.replicate_model, settings.replicate_version,
                       "CC BY-NC-SA 4.0: non-commercial use only", "second",
                       _price(settings, IDM_VTON_PRICE_PER_SECOND), settings.model_typical_step_s or 45,
                       idm_vton_input)
    if name == "nano-banana":
        return Profile(name, NANO_BANANA_MODEL, "", "Google's terms for Gemini 2.5 Flash Image: commercial use allowed",
                       "image", _price(settings, NANO_BANANA_PRICE_PER_IMAGE), settings.model_typical_step_s or 15,
                       nano_banana_input)
    basis: PriceBasis = "image" if settings.model_price_basis == "image" else "second"
    if not settings.custom_model:
        raise ConfigError("MODEL_PROFILE=custom needs REPLICATE_MODEL (owner/name of the model)")
    if not settings.model_input_template:
        raise ConfigError("MODEL_PROFILE=custom needs MODEL_INPUT_TEMPLATE (a JSON object with {person} and {garment})")
    template = parse_template(settings.model_input_template)
    # `owner/name:id` names the model with its version, as Replicate accepts it (a bare id too).
    version = f"{settings.custom_model}:{settings.custom_version}" if settings.custom_version else ""
    return Profile(name, settings.custom_model, version, "the model's own license (see its page)",
                   basis, _price(settings, "0"), settings.model_typical_step_s or 45,
                   lambda step: fill_template(template, step))
