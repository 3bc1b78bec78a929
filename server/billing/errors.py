"""Billing errors: each carries a translation key and its parameters, so the API and the CLI
can show the same clear message in French or English."""

from __future__ import annotations

from crp_common.i18n import tr


class BillingError(ValueError):
    """Bad input or a refused operation; nothing was changed."""

    status = 422  # HTTP status the API answers with

    def __init__(self, key: str, **params: object):
        self.key = key
        self.params = params
        super().__init__(self.message("en"))

    def message(self, lang: str | None = None) -> str:
        return tr(self.key, lang, **self.params)


class RateCardError(BillingError):
    status = 422


class NotFound(BillingError):
    status = 404


class Conflict(BillingError):
    """The operation would break an invariant (issued invoices are immutable, a session is
    billed once, overlapping rate cards...)."""

    status = 409
