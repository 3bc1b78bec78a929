import datetime as dt
import json

from typer.testing import CliRunner

from server.billing import service
from server.billing.charges import EPOCH
from server.billing.cli import app

runner = CliRunner()


def ms(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(milliseconds=1)


def test_run_json_shape_and_rerun_prints_empty_list(world, brief_card):
    a = world.artisan("Awa Diop")
    world.session(a.id, ms(2026, 3, 10, 9, 0), 7)
    world.session(a.id, ms(2026, 3, 11, 9, 0), 61)
    args = ["run", "--period", "2026-03", "--json", "--site", "DKR", "--database-url", world.url]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    (inv,) = json.loads(r.stdout)
    assert inv["number"] == "DKR-2026-000001"
    assert inv["artisan"] == a.id and inv["currency"] == "XOF" and inv["total"] == 3000
    assert [(ln["billed_minutes"], ln["amount"]) for ln in inv["lines"]] == [(15, 500), (75, 2500)]
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout) == []


def test_run_bad_input_is_a_clear_error(world, brief_card):
    r = runner.invoke(app, ["run", "--period", "2026-13", "--site", "DKR", "--database-url", world.url])
    assert r.exit_code == 2 and "2026-13" in r.output
    r = runner.invoke(app, ["run", "--period", "2026-03", "--site", "XXX", "--database-url", world.url])
    assert r.exit_code == 2 and "XXX" in r.output


def test_export_csv_and_pdf(world, brief_card, tmp_path):
    a = world.artisan("Awa Diop")
    world.session(a.id, ms(2026, 3, 10, 9, 0), 61)
    (inv,) = service.run_billing(world.db, "DKR", "2026-03", tax_bp=1800)
    service.issue_credit_note(world.db, inv.number, reason="test")
    r = runner.invoke(
        app, ["export", "--period", "2026-03", "--format", "csv", "--site", "DKR", "--database-url", world.url]
    )
    assert r.exit_code == 0, r.output
    rows = r.stdout.strip().splitlines()
    assert rows[0].startswith("document,kind,site")
    assert len(rows) == 3 and ",2500,XOF," in rows[1] and ",-2500,XOF," in rows[2]
    out = tmp_path / "pdf"
    r = runner.invoke(
        app,
        ["export", "--period", "2026-03", "--format", "pdf", "--out", str(out), "--site", "DKR",
         "--database-url", world.url],
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["DKR-2026-000001.pdf", "DKR-AV-2026-000001.pdf"]
    assert all(p.read_bytes().startswith(b"%PDF") for p in out.iterdir())
    bad = runner.invoke(app, ["export", "--period", "2026-03", "--format", "xls", "--database-url", world.url])
    assert bad.exit_code == 2
