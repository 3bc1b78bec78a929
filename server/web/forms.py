"""Server-side form handling: validate with the API's own input models, turn refusals into
translated messages next to the field, and save a whole form in ONE transaction.

The API's endpoint functions commit as they go; :func:`one_transaction` hands them a session
whose ``commit`` only flushes, so a form that calls several of them (enrol an artisan AND their
badge) commits once at the end, or rolls everything back."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session as DbSession

from crp_common.i18n import tr

from ..errors import ApiError

FORM = "_form"  # key of the errors that belong to no single field

# pydantic error types -> message keys (the API's own messages are English only).
ERROR_KEYS = {
    "missing": "web.error.required",
    "string_too_short": "web.error.required",
    "string_pattern_mismatch": "web.error.format",
    "string_too_long": "web.error.too_long",
    "int_parsing": "web.error.number",
    "int_from_float": "web.error.number",
    "float_parsing": "web.error.number",
    "greater_than": "web.error.range",
    "greater_than_equal": "web.error.range",
    "less_than": "web.error.range",
    "less_than_equal": "web.error.range",
    "date_parsing": "web.error.date",
    "date_from_datetime_parsing": "web.error.date",
    "datetime_parsing": "web.error.date",
    "datetime_from_date_parsing": "web.error.date",
    "literal_error": "web.error.choice",
    "enum": "web.error.choice",
    "bool_parsing": "web.error.choice",
}


class Invalid(Exception):
    """A form refused: ``errors`` maps field name (or :data:`FORM`) to a translated message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def clean(form: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a submitted form, stripped; empty fields are left out (None)."""
    out = {}
    for name in fields:
        v = form.get(name)
        if isinstance(v, str):
            v = v.strip()
        if v not in (None, ""):
            out[name] = v
    return out


def validation_errors(e: ValidationError, lang: str, field_keys: Mapping[str, str] | None = None,
                      rename: Mapping[str, str] | None = None) -> dict[str, str]:
    """One translated message per field (the first error of each). ``field_keys`` gives a
    field its own message for custom-validator errors (e.g. a badge UID's format);
    ``rename`` maps a model field to the form field it came from."""
    out: dict[str, str] = {}
    for err in e.errors():
        loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
        field = (rename or {}).get(loc[0], loc[0]) if loc else FORM
        if field in out:
            continue
        kind = str(err.get("type", ""))
        key = (field_keys or {}).get(field) if kind == "value_error" else None
        key = key or ERROR_KEYS.get(kind, "web.error.invalid")
        out[field] = tr(key, lang)
    return out


def validate(model: type[BaseModel], data: dict[str, Any], lang: str, field_keys: Mapping[str, str] | None = None,
             rename: Mapping[str, str] | None = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise Invalid(validation_errors(e, lang, field_keys, rename)) from None


def api_error(e: ApiError, lang: str, field_of: Mapping[str, str] | None = None) -> Invalid:
    """A refusal from the API's code, next to the field it is about (``field_of``: error key ->
    field; ``"key:what"`` entries name the entity too), else at the top of the form."""
    fields = field_of or {}
    what = e.params.get("what")
    field = fields.get(f"{e.key}:{what}") if what else None
    named = e.params.get("field")  # some refusals name the field themselves
    if field is None and isinstance(named, str) and named in fields.values():
        field = named
    return Invalid({field or fields.get(e.key, FORM): e.message(lang)})


class _FlushOnCommit:
    """A session whose ``commit`` only flushes (everything else is the real session's)."""

    def __init__(self, db: DbSession):
        self._db = db

    def commit(self) -> None:
        self._db.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@contextmanager
def one_transaction(db: DbSession, lang: str, field_of: Mapping[str, str] | None = None) -> Iterator[Any]:
    """``with one_transaction(db, lang) as tx:`` call the API's functions with ``tx``; commit
    once at the end. Any refusal rolls back everything and becomes :class:`Invalid`."""
    tx = _FlushOnCommit(db)
    try:
        yield tx
        db.commit()
    except ApiError as e:
        db.rollback()
        raise api_error(e, lang, field_of) from None
    except (IntegrityError, DataError):
        db.rollback()
        raise Invalid({FORM: tr("server.error.integrity", lang)}) from None
    except BaseException:
        db.rollback()
        raise
