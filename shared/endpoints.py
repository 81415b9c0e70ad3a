"""The five functions, listed once: the folder under functions/, the URL path the devserver (and
the web page's default config) serves it at, and the name the seed document gave it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Function:
    folder: str     # functions/<folder>/index.py, and dist/<folder>.zip
    path: str       # the devserver's URL path
    seed_name: str  # the original platform's function name (deploy.poehali)


FUNCTIONS = (
    Function("start", "/start", "replicate-async-start"),
    Function("worker", "/worker", "replicate-async-worker"),
    Function("checker", "/checker", "replicate-prediction-checker"),
    Function("continue_", "/continue", "replicate-continue"),
    Function("status", "/status", "replicate-async-status"),
)
NAMES = tuple(function.folder for function in FUNCTIONS)
