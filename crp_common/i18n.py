"""The one translation layer. Every text a person reads goes through :func:`tr`.

Catalogs are JSON files in ``crp_common/locales`` (French first, English second); a key missing
from a catalog falls back to French, then to the key itself, so a missing text shows up as a
visible key rather than an exception.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

LANGUAGES = ("fr", "en")
DEFAULT_LANG = "fr"


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        lang = DEFAULT_LANG
    text = resources.files("crp_common").joinpath("locales", f"{lang}.json").read_text("utf-8")
    return json.loads(text)


def normalize_lang(lang: str | None) -> str:
    if not lang:
        return DEFAULT_LANG
    lang = lang.split(",")[0].split("-")[0].split("_")[0].strip().lower()
    return lang if lang in LANGUAGES else DEFAULT_LANG


def tr(key: str, lang: str | None = None, **params: object) -> str:
    lang = normalize_lang(lang)
    text = catalog(lang).get(key) or catalog(DEFAULT_LANG).get(key) or key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text
