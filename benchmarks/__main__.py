"""``python -m benchmarks [--quick] [--only NAME ...]``: run the benchmarks, print one table,
write benchmarks/results.json. Figures are printed beside their targets, never asserted."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from .figures import Figure
from .machine import describe, load_average

RESULTS = Path(__file__).resolve().parent / "results.json"


def _ingest(quick: bool) -> tuple[list[Figure], dict]:
    from .ingest import bench_ingest

    return bench_ingest(n=30_000 if quick else 100_000, n_qos1=10_000 if quick else 30_000, rounds=1 if quick else 3)


def _latency(quick: bool) -> tuple[list[Figure], dict]:
    from .latency import bench_badge_latency

    return bench_badge_latency(n=500 if quick else 3000, n_nagle=50 if quick else 200)


def _billing(quick: bool) -> tuple[list[Figure], dict]:
    from .billing import bench_billing_growth

    return bench_billing_growth((10_000, 100_000) if quick else (10_000, 100_000, 1_000_000))


def _memory(quick: bool) -> tuple[list[Figure], dict]:
    from .memory import bench_gateway_memory

    return bench_gateway_memory(duration_s=60.0 if quick else 600.0)


def _simulation(quick: bool) -> tuple[list[Figure], dict]:
    from .simulation import bench_simulation

    return bench_simulation(speeds=(720.0,) if quick else (720.0, 1440.0, 2880.0), quick=quick)


BENCHES: dict[str, Callable[[bool], tuple[list[Figure], dict]]] = {
    "ingest": _ingest,
    "badge_latency": _latency,
    "billing": _billing,
    "gateway_memory": _memory,
    "simulation": _simulation,
}


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit in ("msgs",):
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def render(figs: list[Figure], machine: dict[str, Any], console: Console) -> None:
    t = Table(title="CRP benchmarks", caption=(
        f"{machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, Python {machine['python']}, "
        f"{machine['mosquitto']}; load average {machine.get('load_average_at_start')} -> "
        f"{machine.get('load_average_at_end')}"))
    for col, kw in (("bench", {}), ("figure", {}), ("value", {"justify": "right"}), ("unit", {}),
                    ("beside (reference)", {}), ("target", {}), ("met", {"justify": "center"}), ("note", {})):
        t.add_column(col, **kw)
    for f in figs:
        met = "" if f.met is None else ("[green]yes[/]" if f.met else "[red]no[/]")
        t.add_row(f.bench, f.name, _fmt(f.value, f.unit), f.unit, f.reference, f.target, met, f.note)
    console.print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, about 3 minutes")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES), metavar="NAME",
                    help=f"run only these ({', '.join(BENCHES)})")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = ap.parse_args(argv)
    console = Console()
    machine = describe()
    names = args.only or list(BENCHES)
    figs: list[Figure] = []
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    started = time.time()
    for name in names:
        console.print(f"[bold]{name}[/] ...", highlight=False)
        t0 = time.monotonic()
        try:
            f, r = BENCHES[name](args.quick)
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
            errors[name] = f"{type(e).__name__}: {e}"
            console.print(f"[red]{name} failed:[/] {errors[name]}")
            traceback.print_exc()
            figs.append(Figure(name, "failed", None, "", note=errors[name][:120], met=False))
            continue
        r["seconds"] = round(time.monotonic() - t0, 1)
        figs += f
        raw[name] = r
        console.print(f"  done in {r['seconds']:.0f} s")
    machine["load_average_at_end"] = load_average()
    render(figs, machine, console)
    result = {"when": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
              "quick": args.quick, "machine": machine, "figures": [f.as_dict() for f in figs], "raw": raw,
              "errors": errors, "seconds": round(time.time() - started, 1)}
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    console.print(f"results: {args.out} ({result['seconds']:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
