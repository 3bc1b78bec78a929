"""``python -m benchmarks [--quick] [--only NAME ...] [--postgres URL]``: run the benchmarks,
each in a fresh child process, print one table, write benchmarks/results.json. Figures are
printed beside their targets, never asserted."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from .figures import Figure
from .machine import describe, load_average, postgres_version

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Options:
    quick: bool = False
    postgres_url: str | None = None  # also bill on PostgreSQL (a scratch schema of this database)


def _ingest(o: Options) -> tuple[list[Figure], dict]:
    from .ingest import bench_ingest

    return bench_ingest(n=30_000 if o.quick else 100_000, n_qos1=10_000 if o.quick else 30_000,
                        rounds=1 if o.quick else 3)


def _latency(o: Options) -> tuple[list[Figure], dict]:
    from .latency import bench_badge_latency

    return bench_badge_latency(n=500 if o.quick else 3000, n_nagle=50 if o.quick else 200)


def _billing(o: Options) -> tuple[list[Figure], dict]:
    from .billing import bench_billing_growth

    return bench_billing_growth((10_000, 100_000) if o.quick else (10_000, 100_000, 1_000_000),
                                postgres_url=o.postgres_url)


def _memory(o: Options) -> tuple[list[Figure], dict]:
    from .memory import bench_gateway_memory

    return bench_gateway_memory(duration_s=60.0 if o.quick else 600.0)


def _simulation(o: Options) -> tuple[list[Figure], dict]:
    from .simulation import bench_simulation

    return bench_simulation(speeds=(720.0,) if o.quick else (720.0, 1440.0, 2880.0), quick=o.quick)


BENCHES: dict[str, Callable[[Options], tuple[list[Figure], dict]]] = {
    "ingest": _ingest,
    "badge_latency": _latency,
    "billing": _billing,
    "gateway_memory": _memory,
    "simulation": _simulation,
}


def run_isolated(bench: Callable[[Options], tuple[list[Figure], dict]], opts: Options) -> tuple[list[Figure], dict]:
    """Run one benchmark in a child process forked from this one, which has run none of the
    others: no benchmark inherits another's heap, threads or garbage (a billing run measured
    after the ingest benchmarks in the same process was up to twice as slow). The child's
    exception comes back as a :class:`BenchmarkFailed` with its traceback."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            result: tuple = ("ok", bench(opts), os.getpid())
        except BaseException as e:  # noqa: BLE001 - reported by the parent
            result = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
        send.send(result)

    proc = ctx.Process(target=child, name="benchmark")
    proc.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = None
    finally:
        receive.close()
        proc.join()
    if result is None:
        raise BenchmarkFailed(f"the benchmark's process ended without a result (exit code {proc.exitcode})")
    if result[0] == "error":
        raise BenchmarkFailed(result[1], result[2])
    figs, raw = result[1]
    raw.setdefault("pid", result[2])
    return figs, raw


class BenchmarkFailed(RuntimeError):
    def __init__(self, message: str, child_traceback: str = ""):
        super().__init__(message)
        self.child_traceback = child_traceback


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
        f"{machine['mosquitto']}" + (f", {machine['postgresql']}" if machine.get("postgresql") else "")
        + f"; load average {machine.get('load_average_at_start')} -> "
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
    ap.add_argument("--postgres", metavar="URL", default=os.environ.get("BENCH_POSTGRES_URL") or None,
                    help="also bill on this PostgreSQL database, in a scratch schema dropped afterwards "
                         "(default: $BENCH_POSTGRES_URL)")
    ap.add_argument("--same-process", action="store_true",
                    help="run every benchmark in this process instead of a fresh child each")
    args = ap.parse_args(argv)
    opts = Options(quick=args.quick, postgres_url=args.postgres)
    console = Console()
    machine = describe()
    if args.postgres:
        machine["postgresql"] = postgres_version(args.postgres)
    names = args.only or list(BENCHES)
    figs: list[Figure] = []
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    started = time.time()
    for name in names:
        console.print(f"[bold]{name}[/] ...", highlight=False)
        t0 = time.monotonic()
        try:
            f, r = BENCHES[name](opts) if args.same_process else run_isolated(BENCHES[name], opts)
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
            message = str(e) if isinstance(e, BenchmarkFailed) else f"{type(e).__name__}: {e}"
            errors[name] = message
            console.print(f"[red]{name} failed:[/] {message}")
            print(getattr(e, "child_traceback", "") or traceback.format_exc(), file=sys.stderr)
            figs.append(Figure(name, "failed", None, "", note=message[:120], met=False))
            continue
        r["seconds"] = round(time.monotonic() - t0, 1)
        figs += f
        raw[name] = r
        console.print(f"  done in {r['seconds']:.0f} s")
    machine["load_average_at_end"] = load_average()
    render(figs, machine, console)
    result = {"when": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
              "quick": args.quick, "postgres": bool(args.postgres), "isolated": not args.same_process,
              "machine": machine, "figures": [f.as_dict() for f in figs], "raw": raw,
              "errors": errors, "seconds": round(time.time() - started, 1)}
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    console.print(f"results: {args.out} ({result['seconds']:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
