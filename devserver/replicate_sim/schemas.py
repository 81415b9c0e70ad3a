"""The models the simulator knows, how a create names one, and each model's input schema.

- `cuuupid/idm-vton`: by version (bare id, `owner/name:id`, or `owner/name`; also the models
  endpoint, which the project uses when REPLICATE_VERSION is empty). Prints tqdm progress.
- `google/nano-banana`: an official model, only through `POST /v1/models/google/nano-banana/predictions`.
- any other `owner/name:version`: a custom model that accepts any input object.
Inputs a real model would reject (missing, unknown, mistyped fields) are a 422 like Replicate's.
"""

from __future__ import annotations

from dataclasses import dataclass

from devserver.replicate_sim.state import SimError

IDM_VTON = "cuuupid/idm-vton"
IDM_VTON_VERSION = "0452664a003fbcc9bd2b9dbe31207b6bde4fb33932a226d67b72a28e5306bf77"
NANO_BANANA = "google/nano-banana"
CATEGORIES = ("upper_body", "lower_body", "dresses")
OUTPUT_FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class Model:
    name: str
    versions: frozenset[str]   # empty: an official model, run by name only
    profile: str               # idm-vton | nano-banana | custom


MODELS = {
    IDM_VTON: Model(IDM_VTON, frozenset({
        IDM_VTON_VERSION, "c871bb9b046607b680449ecbae55fd8c6d945e0a1948644bf2361b3d021d3ff4"}), "idm-vton"),
    NANO_BANANA: Model(NANO_BANANA, frozenset(), "nano-banana"),
}

# name -> (JSON type, required); the properties each known model's schema declares.
IDM_VTON_INPUT = {"human_img": ("uri", True), "garm_img": ("uri", True), "garment_des": ("string", False),
                  "category": ("string", False), "crop": ("boolean", False), "seed": ("integer", False),
                  "steps": ("integer", False), "force_dc": ("boolean", False), "mask_only": ("boolean", False)}
NANO_BANANA_INPUT = {"prompt": ("string", True), "image_input": ("uri-array", False),
                     "output_format": ("string", False)}


def resolve(body: dict, model_path: str | None) -> tuple[str, str, str]:
    """(model name, version, profile) for a create by version (`body["version"]`) or through the
    models endpoint (`model_path` = `owner/name`)."""
    invalid = SimError(422, "Invalid version or not permitted",
                       "The specified version does not exist (or perhaps you don't have permission to use it?)")
    if model_path is not None:
        if model_path not in MODELS:
            raise SimError(404, "Not found", f"Model {model_path} not found")
        return model_path, "hidden", MODELS[model_path].profile
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise SimError(422, "Input validation failed", "- version: version is required\n")
    name, _, version_id = version.partition(":")
    known = MODELS.get(name)
    if version_id:
        if known is None and name.count("/") == 1 and all(name.split("/")):
            return name, version_id, "custom"
        if known is not None and version_id in known.versions:
            return name, version_id, known.profile
        raise invalid
    if "/" in version:
        # `owner/name` alone names IDM-VTON's latest version; nano-banana runs only through its models endpoint.
        if known is not None and known.versions:
            return name, "hidden", known.profile
        raise invalid
    for model in MODELS.values():
        if version in model.versions:
            return model.name, version, model.profile
    raise invalid


def _problem(kind: str, name: str, description: str) -> dict:
    return {"type": kind, "field": f"input.{name}", "description": description}


def _typed(name: str, kind: str, value) -> dict | None:
    if kind == "uri":
        if not isinstance(value, str) or not value.startswith(("http://", "https://", "data:")):
            return _problem("format", name, f"{name}: Does not match format 'uri'")
    elif kind == "uri-array":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith(("http://", "https://", "data:"))
                                                  for v in value):
            return _problem("format", name, f"{name}: Expected an array of URIs")
    else:
        python = {"string": str, "boolean": bool, "integer": int}[kind]
        if not isinstance(value, python) or (kind == "integer" and isinstance(value, bool)):
            return _problem("type", name, f"{name}: Invalid type. Expected: {kind}")
    return None


def _check(model_input: dict, schema: dict) -> list[dict]:
    invalid = []
    for name, (kind, required) in schema.items():
        if name not in model_input:
            if required:
                invalid.append(_problem("required", name, f"{name} is required"))
            continue
        if (problem := _typed(name, kind, model_input[name])) is not None:
            invalid.append(problem)
    for name in model_input:
        if name not in schema:
            invalid.append(_problem("additional_property_not_allowed", name,
                                    f"Additional property {name} is not allowed"))
    return invalid


def _enum(model_input: dict, name: str, allowed: tuple[str, ...]) -> list[dict]:
    if name in model_input and isinstance(model_input[name], str) and model_input[name] not in allowed:
        return [_problem("enum", name, f"{name} must be one of the following: {', '.join(allowed)}")]
    return []


def validate_input(profile: str, model_input: dict) -> list[dict]:
    """The model's input schema, as Replicate checks it before a prediction is created."""
    if profile == "idm-vton":
        invalid = _check(model_input, IDM_VTON_INPUT) + _enum(model_input, "category", CATEGORIES)
        steps = model_input.get("steps")
        if isinstance(steps, int) and not isinstance(steps, bool) and not 1 <= steps <= 40:
            invalid.append(_problem("number_gte", "steps", "steps must be between 1 and 40"))
        return invalid
    if profile == "nano-banana":
        return _check(model_input, NANO_BANANA_INPUT) + _enum(model_input, "output_format", OUTPUT_FORMATS)
    return []


def input_error(invalid: list[dict]) -> SimError:
    return SimError(422, "Input validation failed", "".join(f"- input: {f['description']}\n" for f in invalid),
                    invalid_fields=invalid)
