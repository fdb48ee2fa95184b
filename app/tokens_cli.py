"""``cpwatch tokens create|list|revoke``: API tokens in the file store (cpwatch/tokens.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from cpwatch import tokens
from cpwatch.settings import get_settings

tokens_app = typer.Typer(help="API tokens (read or write scope) kept under CPWATCH_HOME.")
err = Console(stderr=True)


@tokens_app.command("create")
def create(
    scope: Annotated[str, typer.Option(help="read (GET only) or write (also implies read).")],
    label: Annotated[
        str | None, typer.Option(help="Name shown in `tokens list` and as acked_by.")
    ] = None,
) -> None:
    """Print a new token once (stdout); only its SHA-256 is stored."""
    settings = get_settings()
    try:
        token, entry = tokens.create(settings, scope, label)
    except tokens.TokenError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    sys.stdout.write(token + "\n")
    err.print(
        f"token {entry.label!r} ({entry.scope}) stored in {tokens.token_file(settings)};"
        " it is shown only now. Clients send it as CPWATCH_API_TOKEN."
    )


@tokens_app.command("list")
def list_tokens(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Labels, scopes and creation times of the stored tokens (never the tokens)."""
    settings = get_settings()
    try:
        stored = tokens.read_file(tokens.token_file(settings))
    except tokens.TokenError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    for t in stored:
        row = {"label": t.label, "scope": t.scope, "created": t.created}
        line = json.dumps(row) if as_json else "\t".join(row.values())
        sys.stdout.write(line + "\n")
    n_env = len(tokens.env_credentials(settings))
    if n_env:
        err.print(f"also {n_env} from CPWATCH_API_TOKENS (write scope, env-1..env-{n_env})")


@tokens_app.command("revoke")
def revoke(label: Annotated[str, typer.Argument(help="The token's label.")]) -> None:
    """Remove a stored token; the API refuses it from the next request on."""
    try:
        tokens.revoke(get_settings(), label)
    except tokens.TokenError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(f"revoked {label}")
