from __future__ import annotations

from typer.testing import CliRunner

from crp_cli import main


def test_a_missing_part_says_so_instead_of_crashing(monkeypatch) -> None:
    monkeypatch.setitem(main.LAZY_APPS, "ghost", ("no_such_module_here", "app", "A part not installed."))
    r = CliRunner().invoke(main.app, ["ghost"])
    import click

    assert r.exit_code == 1
    assert isinstance(r.exception, click.ClickException)  # a clear message, not a NameError
    assert "'ghost' is not available in this installation" in str(r.exception)
    assert "no_such_module_here" in str(r.exception)
