"""Channel secrets never travel as command-line arguments: environment or a hidden prompt."""

from __future__ import annotations

from typer.testing import CliRunner

from app.cli import app

HOOK = ["subscribe", "--name", "n", "--webhook", "https://hooks.example.org/x"]


def test_secret_argument_is_refused() -> None:
    out = CliRunner().invoke(app, [*HOOK, "--secret", "s" * 20])
    assert out.exit_code == 2 and "No such option" in out.output


def test_missing_secret_names_the_variable_without_a_terminal() -> None:
    out = CliRunner().invoke(app, HOOK, env={"CPWATCH_WEBHOOK_SECRET": ""})
    assert out.exit_code == 2
    assert "CPWATCH_WEBHOOK_SECRET" in out.output


def test_pagerduty_key_from_the_environment_is_not_echoed() -> None:
    key = "R0UTINGKEY-do-not-print-1234567890"
    # No API listens on this port: the command fails after building the request.
    out = CliRunner().invoke(
        app,
        ["subscribe", "--name", "n", "--pagerduty"],
        env={"CPWATCH_PAGERDUTY_ROUTING_KEY": key, "CPWATCH_API_PORT": "9"},
    )
    assert out.exit_code != 0 and key not in out.output
