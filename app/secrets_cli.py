"""``cpwatch secrets keygen|rotate``: the key of channel secrets at rest (cpwatch/secretbox.py).

Rotation: set the new key as ``CPWATCH_SECRET_KEY`` and the previous one(s) in
``CPWATCH_SECRET_KEY_OLD`` on every process, run ``cpwatch secrets rotate`` (re-encrypts each
stored subscription whose secrets are clear or under another key), then drop the old keys.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

from cpwatch import secretbox
from cpwatch.exceptions import ConfigError
from cpwatch.settings import Settings, get_settings

secrets_app = typer.Typer(help="Encryption of channel secrets stored in Elasticsearch.")
err = Console(stderr=True)


@secrets_app.command("keygen")
def keygen() -> None:
    """Print a new random key for CPWATCH_SECRET_KEY (stdout only)."""
    sys.stdout.write(secretbox.new_key() + "\n")


def rotate_all(es: Any, settings: Settings, box: secretbox.SecretBox) -> tuple[int, int]:
    """Re-encrypt every stored subscription under ``box``'s current key; (rewritten, kept).
    Each write is conditional on the version read, so a concurrent edit is not overwritten
    (its own write already used the current key)."""
    from elasticsearch import ConflictError, helpers

    from notify.subscriptions import Subscription

    rewritten = kept = 0
    index = settings.index("subscriptions")
    hits = helpers.scan(
        es,
        index=index,
        query={"query": {"match_all": {}}},
        seq_no_primary_term=True,
        ignore_unavailable=True,
    )
    for hit in hits:
        source = hit["_source"]
        sub = Subscription.from_es_doc(source, box)  # SecretBoxError: a key is missing
        stored = source.get("channel") or {}
        if not any(box.needs_rotation(stored.get(f)) for f in sub.channel.secret_fields()):
            kept += 1
            continue
        try:
            es.index(
                index=index,
                id=hit["_id"],
                document=sub.to_es_doc(box),
                if_seq_no=hit["_seq_no"],
                if_primary_term=hit["_primary_term"],
            )
        except ConflictError:
            kept += 1  # changed meanwhile: that writer sealed it with the current key
            continue
        rewritten += 1
    es.indices.refresh(index=index, ignore_unavailable=True)
    return rewritten, kept


@secrets_app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored subscription's channel secrets with CPWATCH_SECRET_KEY."""
    from elasticsearch import Elasticsearch

    settings = get_settings()
    try:
        box = secretbox.from_settings(settings)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if not box.enabled:
        err.print("[red]error:[/red] set CPWATCH_SECRET_KEY (the new key) first")
        raise typer.Exit(2)
    es = Elasticsearch(**settings.es_client_kwargs())  # type: ignore[arg-type]
    try:
        rewritten, kept = rotate_all(es, settings, box)
    except secretbox.SecretBoxError as exc:
        err.print(f"[red]error:[/red] {exc} (is the old key in CPWATCH_SECRET_KEY_OLD?)")
        raise typer.Exit(1) from None
    finally:
        es.close()
    err.print(f"{rewritten} subscription(s) re-encrypted with key {box.current_kid}; {kept} kept")
