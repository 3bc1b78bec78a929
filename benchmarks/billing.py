"""``billing``: seconds to bill 10k, 100k (and 1M) closed sessions in one billing run
(``server.billing.bench.bill_synthetic``, seeding not counted), and the growth exponent, on the
embedded SQLite and, when a PostgreSQL URL is given, on PostgreSQL (a scratch schema)."""

from __future__ import annotations

from typing import Sequence

from .figures import Figure, growth_exponent, median

PER_100K_TARGET_S = 1.0
LINEAR_MAX_EXPONENT = 1.15
SMALL_REPEATS = 3  # sizes up to SMALL_SIZE are billed this many times (median)
SMALL_SIZE = 10_000


def bench_billing_growth(
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000), postgres_url: str | None = None
) -> tuple[list[Figure], dict]:
    databases: list[tuple[str, str | None]] = [("SQLite", None)]
    if postgres_url:
        databases.append(("PostgreSQL", postgres_url))
    figs: list[Figure] = []
    raw: dict = {}
    for label, url in databases:
        f, r = _growth(sizes, url, label if postgres_url else "")
        figs += f
        raw[label.lower()] = r
    # the first database's figures stay at the top level, as before PostgreSQL was measured
    return figs, {**raw["sqlite"], "by_database": raw}


def _growth(sizes: Sequence[int], url: str | None, label: str) -> tuple[list[Figure], dict]:
    from server.billing.bench import bill_synthetic

    times: dict[int, float] = {}
    runs: dict[int, list[float]] = {}
    for n in sizes:
        repeats = SMALL_REPEATS if n <= SMALL_SIZE else 1
        runs[n] = []
        for _ in range(repeats):
            seconds, _invoices, lines = bill_synthetic(n, url)
            if lines != n:
                raise RuntimeError(f"billing {n} sessions produced {lines} invoice lines")
            runs[n].append(seconds)
        times[n] = median(runs[n])
    b = "billing"
    on = f" ({label})" if label else ""
    figs = []
    for n in sizes:
        per100k = times[n] * 100_000 / n
        figs.append(Figure(b, f"bill {n:,} sessions{on}", times[n], "s", reference=f"{per100k:.2f} s per 100k",
                           target=f"< {PER_100K_TARGET_S:g} s per 100k", met=per100k < PER_100K_TARGET_S,
                           note=f"{n / times[n]:,.0f} sessions/s" + (f", median of {len(runs[n])}"
                                                                      if len(runs[n]) > 1 else "")))
    exp = growth_exponent(times.items()) if len(times) > 1 else None
    figs.append(Figure(b, f"growth exponent{on}", exp, "", reference="log-log slope of time vs sessions",
                       target=f"linear (<= {LINEAR_MAX_EXPONENT})", met=exp is not None and exp <= LINEAR_MAX_EXPONENT))
    return figs, {"runs": {str(k): v for k, v in runs.items()}, "exponent": exp}
