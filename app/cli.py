"""The ``cpwatch`` command line: one entry point for every stage.

Commands import their stage lazily so ``cpwatch --help`` stays fast and a stage's heavy
dependencies load only when used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from app.secrets_cli import secrets_app
from app.tokens_cli import tokens_app
from cpwatch.exceptions import CpwatchError
from cpwatch.settings import get_settings

if TYPE_CHECKING:
    from deploy.stack import Stack  # loaded lazily by the stack commands

app = typer.Typer(help="cpwatch: crypto-policy and treasury watch.", no_args_is_help=True)
stack_app = typer.Typer(help="The local single-node Kafka + Elasticsearch stack.")
produce_app = typer.Typer(help="Push news, price ticks and holdings into Kafka.")
topics_app = typer.Typer(help="Kafka topics.")
app.add_typer(stack_app, name="stack")
app.add_typer(produce_app, name="produce")
indices_app = typer.Typer(help="Elasticsearch index templates and aliases.")
app.add_typer(topics_app, name="topics")
app.add_typer(indices_app, name="indices")

err = Console(stderr=True)


SecureOpt = Annotated[
    bool,
    typer.Option(
        "--secure",
        help="The secured stack (SASL_SSL Kafka, HTTPS Elasticsearch with users, own ports).",
    ),
]


def _stack(secure: bool) -> Stack:
    if secure:
        from deploy.secure_stack import SecureStack

        return SecureStack(get_settings(), console=err)
    from deploy.stack import Stack

    return Stack(get_settings(), console=err)


@stack_app.command("up")
def stack_up(
    with_prometheus: Annotated[bool, typer.Option(help="Also start Prometheus.")] = False,
    secure: SecureOpt = False,
) -> None:
    """Install (cached) and start Kafka and Elasticsearch; wait until both are healthy.

    With --secure, print the client environment as shell lines (eval them); the secrets stay
    in a 0600 file that the last line sources."""
    stack = _stack(secure)
    stack.up(with_prometheus=with_prometheus)
    if secure:
        sys.stdout.write(stack.exports())


@stack_app.command("down")
def stack_down(secure: SecureOpt = False) -> None:
    """Stop exactly the processes `stack up` started."""
    _stack(secure).down()


@stack_app.command("status")
def stack_status(secure: SecureOpt = False) -> None:
    """Tell what runs, where its data and logs live."""
    ok = _stack(secure).status()
    raise typer.Exit(0 if ok else 1)


@stack_app.command("logs")
def stack_logs(
    service: Annotated[str, typer.Argument(help="kafka or elasticsearch")] = "kafka",
    lines: int = 50,
    secure: SecureOpt = False,
) -> None:
    """Print the tail of a service's log."""
    sys.stdout.write(_stack(secure).logs(service, lines))


@topics_app.command("create")
def topics_create(
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Create missing topics with N partitions and raise existing ones below N to N"
            " (never lowers; see the note it prints).",
        ),
    ] = None,
) -> None:
    """Create every cpwatch topic that is missing (idempotent)."""
    from cpwatch.topics import REPARTITION_NOTE, ensure_topics, raise_partitions

    if partitions is None:
        created = ensure_topics(get_settings())
        err.print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")
        return
    changes = raise_partitions(get_settings(), partitions)  # PartitionError: exit 2
    for c in changes:
        before = "created" if c.before is None else f"{c.before} ->"
        err.print(f"{c.topic}: {before} {c.after} partition(s)")
    if not changes:
        err.print(f"every topic already has {partitions} partition(s)")
    if any(c.before is not None for c in changes):
        err.print(REPARTITION_NOTE, soft_wrap=True)


@topics_app.command("plan")
def topics_plan(
    workers: Annotated[int, typer.Option(min=1, help="Workers (consumer group members).")],
    ticks_per_s: Annotated[float, typer.Option(min=0, help="Price ticks per second, all venues.")],
    articles_per_s: Annotated[float, typer.Option(min=0, help="News articles per second.")] = 0.0,
    utilisation: Annotated[
        float, typer.Option(min=0.05, max=1.0, help="Share of a worker core one partition may use.")
    ] = 0.5,
) -> None:
    """Partitions each topic needs for N workers at these rates, with the arithmetic."""
    from cpwatch.capacity import format_plan, plan
    from cpwatch.topics import existing_partitions

    settings = get_settings()
    result = plan(workers, ticks_per_s, articles_per_s, utilisation=utilisation)
    existing = existing_partitions(settings)
    sys.stdout.write(format_plan(result, existing) + "\n")
    if existing is None:
        err.print(f"Kafka at {settings.kafka_bootstrap} not reachable: existing topics not checked")


@indices_app.command("install")
def indices_install() -> None:
    """Install every index template and first index behind its alias (idempotent)."""
    from elasticsearch import Elasticsearch

    from sinks.indices import ensure_indices

    settings = get_settings()
    ensure_indices(Elasticsearch(**settings.es_client_kwargs()), settings)
    err.print("index templates installed")


@indices_app.command("migrate")
def indices_migrate(
    name: Annotated[str, typer.Argument(help="articles, events or alerts")],
    version: Annotated[int, typer.Option(help="The new index version, e.g. 2.")],
) -> None:
    """Copy an alias's documents into `<alias>-v<version>` and swap the alias atomically."""
    from elasticsearch import Elasticsearch

    from sinks.indices import ensure_indices, migrate

    settings = get_settings()
    es = Elasticsearch(**settings.es_client_kwargs())
    ensure_indices(es, settings, [name])
    err.print(f"{settings.index(name)} now on {migrate(es, settings, name, version)}")


@app.command("run")
def run(
    sample: Annotated[bool, typer.Option(help="Replay the bundled sample data.")] = True,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
) -> None:
    """The main job: topics, Faust worker, sinks, API and sample producers, supervised."""
    from app.supervisor import run_all

    raise typer.Exit(run_all(get_settings(), sample=sample, duration=duration, console=err))


@app.command("worker")
def worker(
    loglevel: Annotated[
        str,
        typer.Option(
            "--loglevel",
            help="debug, info, warning or error; info adds group joins, partition "
            "assignments and table recovery.",
        ),
    ] = "warning",
) -> None:
    """Run the Faust worker (all stream agents) in the foreground."""
    from app.worker import run_worker

    if loglevel.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(f"unknown level {loglevel!r}", param_hint="--loglevel")
    run_worker(get_settings(), loglevel.lower())


@produce_app.command("news")
def produce_news(
    jsonl: Annotated[Path | None, typer.Option(help="Replay a JSON Lines file.")] = None,
    rss: Annotated[list[str] | None, typer.Option(help="Poll RSS/Atom feed URL(s).")] = None,
    interval: Annotated[float, typer.Option(help="Feed poll interval, seconds.")] = 300.0,
    speed: Annotated[
        float,
        typer.Option(help="Replay speed factor on `published` gaps; 0 = as fast as possible."),
    ] = 0.0,
    once: Annotated[bool, typer.Option(help="Poll feeds once and exit.")] = False,
) -> None:
    """Produce news articles to the `news` topic."""
    from producers.commands import produce_news as run_news

    raise typer.Exit(
        run_news(
            get_settings(),
            jsonl=jsonl,
            rss=rss or [],
            interval=interval,
            speed=speed,
            once=once,
            console=err,
        )
    )


@produce_app.command("prices")
def produce_prices(
    csv: Annotated[
        Path | None, typer.Option(help="Replay a CSV of date|ts,open,high,low,close[,volume].")
    ] = None,
    ws: Annotated[
        str | None, typer.Option(help="Live WebSocket venue: coinbase or kraken.")
    ] = None,
    rest: Annotated[
        str | None, typer.Option(help="REST polling fallback venue (coinbase).")
    ] = None,
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. BTC-USD.")] = "BTC-USD",
    venue: Annotated[str, typer.Option(help="Venue name for CSV replay.")] = "replay",
    speed: Annotated[
        float,
        typer.Option(
            help="Replay speed factor in days of data per second; 0 = as fast as possible."
        ),
    ] = 0.0,
    url: Annotated[str | None, typer.Option(help="Override the venue endpoint URL.")] = None,
) -> None:
    """Produce price ticks to the `price-ticks` topic."""
    from producers.commands import produce_prices as run_prices

    raise typer.Exit(
        run_prices(
            get_settings(),
            csv=csv,
            ws=ws,
            rest=rest,
            symbol=symbol,
            venue=venue,
            speed=speed,
            url=url,
            console=err,
        )
    )


@produce_app.command("holdings")
def produce_holdings(
    file: Annotated[Path, typer.Argument(help="Holdings CSV or YAML (format of treasuries.csv).")],
) -> None:
    """Produce one HoldingUpdate per row to the compacted `holdings` topic."""
    from producers.commands import produce_holdings as run_holdings

    raise typer.Exit(run_holdings(get_settings(), file, console=err))


@app.command("classify")
def classify(
    file: Annotated[str, typer.Argument(help="JSON Lines input, or - for stdin.")] = "-",
) -> None:
    """Classify articles offline: one JSON line out per line in, same order."""
    from streams.classify_cli import classify_command

    raise typer.Exit(classify_command(file))


@app.command("eval")
def evaluate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Labelled JSON Lines (format of dev.jsonl).")
    ] = None,
    cv: Annotated[int, typer.Option(help="K-fold cross-validation over all files (0: off).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the stratified fold split.")] = 13,
    search: Annotated[
        bool,
        typer.Option(
            "--search",
            help="Score search instead: nDCG@10/recall@10 of the judged queries"
            " (bench/search_judgments.json) over FILES, default ../shared/data/news/dev*.jsonl.",
        ),
    ] = False,
) -> None:
    """Score the classifier, its rules alone and a keyword baseline on labelled files."""
    if search:
        _eval_search(files)
        return
    if not files:
        err.print("[red]error:[/red] give the labelled FILES (or --search)")
        raise typer.Exit(2)
    from streams.classify_cli import eval_command

    raise typer.Exit(eval_command(files, cv, seed))


def _eval_search(files: list[Path] | None) -> None:
    from api.search_eval import DEV_DIR, evaluate, format_report

    try:
        result = evaluate(get_settings(), articles=files or None)
    except FileNotFoundError as exc:
        err.print(
            f"[red]error:[/red] not found: {exc}. The judged queries are over the dev articles"
            f" in {DEV_DIR} (the project's shared data, beside the repository); pass the"
            " article files as FILES if they live elsewhere."
        )
        raise typer.Exit(2) from exc
    except RuntimeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    sys.stdout.write(format_report(result) + "\n")


@app.command("backtest")
def backtest(
    prices: Annotated[Path, typer.Option(help="Prices CSV with date (or ts) and close.")],
    holdings: Annotated[Path, typer.Option(help="Holdings CSV (format of treasuries.csv).")],
    rules: Annotated[Path, typer.Option(help="Rules YAML with a top-level `rules:` list.")],
    holdings_after: Annotated[
        int,
        typer.Option(
            min=0,
            help="The holdings arrive after this many price rows (default 0: before any); "
            "later arrivals follow the late-holding rules, as in the stream.",
        ),
    ] = 0,
    engine: Annotated[
        str,
        typer.Option(help="columnar (numpy, default) or scalar (the reference engine)."),
    ] = "columnar",
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw each holder's value, thresholds and crossings (.png/.html)."),
    ] = None,
) -> None:
    """Replay prices and holdings through the rule engine; print one JSON line per crossing."""
    from streams.backtest import backtest_command

    if engine not in ("columnar", "scalar"):
        raise typer.BadParameter("use columnar or scalar", param_hint="--engine")
    raise typer.Exit(
        backtest_command(
            prices,
            holdings,
            rules,
            holdings_after,
            engine_name="columnar" if engine == "columnar" else "scalar",
            plot=plot,
        )
    )


@app.command("search")
def search(
    query: Annotated[
        str,
        typer.Argument(
            help='Words (all must match); OR or |; NOT or -; "phrase"; prefix*; ( ); "" for all.'
        ),
    ],
    category: Annotated[list[str] | None, typer.Option(help="Category; repeat for OR.")] = None,
    country: Annotated[list[str] | None, typer.Option(help="ISO code; repeat for OR.")] = None,
    org: Annotated[list[str] | None, typer.Option(help="Organisation; repeat for OR.")] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO date/datetime.")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this ISO date (whole day).")] = None,
    index: Annotated[str, typer.Option(help="events, articles or alerts.")] = "events",
    size: Annotated[int, typer.Option(help="Hits per page, 1..100.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    after: Annotated[str | None, typer.Option(help="`next` cursor of a previous page.")] = None,
) -> None:
    """Full-text search over events, articles or alerts: ranked hits, highlights, facets."""
    import json

    from rich.table import Table
    from rich.text import Text

    from api import search_service
    from api.search import QueryError, parse_params, split_highlight

    settings = get_settings()
    try:
        params = parse_params(
            query,
            index=index,
            category=category,
            country=country,
            org=org,
            since=since,
            until=until,
            size=size,
            after=after,
        )
        es = search_service.client(settings)
        try:
            result = search_service.search(es, settings, params)
        finally:
            es.close()
    except QueryError as exc:
        name = "QUERY" if exc.param == "q" else f"--{exc.param}"
        err.print(f"[red]error:[/red] invalid value for {name}: {exc.reason}")
        raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"{result['total']:,} hit(s) in {params.index}", expand=True)
    for col in ("score", "published", "title", "categories", "countries"):
        table.add_column(col, overflow="fold", ratio=4 if col == "title" else 1)
    for hit in result["hits"]:
        title = Text()
        for part, em in split_highlight((hit["highlight"].get("title") or [hit["title"]])[0]):
            title.append(part, style="bold yellow" if em else None)
        for snippet in hit["highlight"].get("text", [])[:1]:
            title.append("\n")
            for part, em in split_highlight(snippet):
                title.append(part, style="bold yellow" if em else "dim")
        table.add_row(
            f"{hit['score'] or 0:.2f}",
            str(hit["published"] or "")[:10],
            title,
            ", ".join(hit["categories"]),
            ", ".join(hit["countries"]),
        )
    out = Console()
    out.print(table)
    for name, buckets in result["facets"].items():
        counts = ", ".join(f"{k} ({n})" for k, n in buckets[:10]) or "-"
        out.print(f"[bold]{name}[/bold]: {counts}")
    if result["next"]:
        out.print(f"next page: --after {result['next']}")


holdings_app = typer.Typer(help="Holdings statements read from the news: review, accept.")
app.add_typer(holdings_app, name="holdings")


@holdings_app.command("proposals")
def holdings_proposals(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List proposed holdings updates, oldest first, and whether each was accepted."""
    import json

    from rich.table import Table

    from producers.proposals import list_proposals

    rows = list_proposals(get_settings())
    if as_json:
        for r in rows:
            print(json.dumps({**r.proposal.to_dict(), "accepted": r.accepted}))
        return
    table = Table("id", "as of", "holder", "statement", "BTC", "accepted", "evidence")
    for r in rows:
        p = r.proposal
        table.add_row(
            p.id,
            p.as_of.date().isoformat(),
            p.holder,
            p.statement,
            f"{p.btc:,.8g}",
            "yes" if r.accepted else "",
            p.evidence[:80],
        )
    Console().print(table)


@holdings_app.command("accept")
def holdings_accept(proposal_id: Annotated[str, typer.Argument(help="Proposal id.")]) -> None:
    """Send a proposal to the holdings topic (a purchase or sale applies to the previous total)."""
    from producers.proposals import accept

    try:
        update = accept(get_settings(), proposal_id)
    except (LookupError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(f"accepted: {update.holder} holds {update.btc:,.8g} BTC as of {update.as_of.date()}")


subscriptions_app = typer.Typer(help="Alert subscriptions (through the HTTP API).")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(tokens_app, name="tokens")
app.add_typer(secrets_app, name="secrets")


def _api(method: str, path: str, **kw: object) -> object:
    """Call the cpwatch API at settings api_host:api_port with $CPWATCH_API_TOKEN."""
    import httpx

    from cpwatch.tokens import client_token

    s = get_settings()
    headers = {}
    token = client_token(s)  # CPWATCH_API_TOKEN, else a plain CPWATCH_API_TOKENS entry
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://{s.api_host}:{s.api_port}{path}"
    try:
        resp = httpx.request(method, url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] cannot reach the API at {url}: {exc}")
        raise typer.Exit(1) from exc
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        err.print(f"[red]error:[/red] HTTP {resp.status_code}: {detail}")
        raise typer.Exit(2 if resp.status_code < 500 else 1)
    return resp.json() if resp.content else None


def _secret(env: str, what: str) -> str:
    """A secret from ``env``, else typed at a hidden prompt; exit 2 when neither can be had."""
    import os

    value = os.environ.get(env, "").strip()
    if value:
        return value
    if sys.stdin.isatty():
        return str(typer.prompt(what, hide_input=True)).strip()
    err.print(f"[red]error:[/red] set {env} (the {what}); secrets are not taken as arguments")
    raise typer.Exit(2)


@app.command("subscribe")
def subscribe(
    name: Annotated[str, typer.Option(help="Subscription name.")],
    query: Annotated[
        str | None, typer.Option(help="simple_query_string, e.g. 'IMF AND mining'.")
    ] = None,  # noqa: UP007
    country: Annotated[
        list[str] | None, typer.Option(help="ISO country code; repeat for OR.")
    ] = None,  # noqa: UP007
    category: Annotated[list[str] | None, typer.Option(help="Category; repeat for OR.")] = None,  # noqa: UP007
    holder: Annotated[
        list[str] | None, typer.Option(help="Holder: its alerts and linked events; repeat for OR.")
    ] = None,  # noqa: UP007
    webhook: Annotated[
        str | None,
        typer.Option(help="Webhook URL; its HMAC secret from CPWATCH_WEBHOOK_SECRET or a prompt."),
    ] = None,  # noqa: UP007
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,  # noqa: UP007
    slack: Annotated[str | None, typer.Option(help="Slack incoming-webhook URL.")] = None,  # noqa: UP007
    pagerduty: Annotated[
        bool,
        typer.Option(
            "--pagerduty",
            help="PagerDuty Events v2; routing key from CPWATCH_PAGERDUTY_ROUTING_KEY or a prompt.",
        ),
    ] = False,
    teams: Annotated[str | None, typer.Option(help="Teams Workflows webhook URL.")] = None,  # noqa: UP007
    discord: Annotated[str | None, typer.Option(help="Discord webhook URL.")] = None,  # noqa: UP007
    telegram: Annotated[
        str | None,
        typer.Option(
            help="Telegram chat id or @channel; token from CPWATCH_TELEGRAM_BOT_TOKEN or a prompt."
        ),
    ] = None,  # noqa: UP007
    group_wait: Annotated[str | None, typer.Option(help="Digest wait, e.g. 0s, 10s.")] = None,  # noqa: UP007
    group_interval: Annotated[
        str | None, typer.Option(help="Wait between digests of one group, e.g. 1m.")
    ] = None,  # noqa: UP007
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="Group label (rule, direction, holder, rule_type, kind); repeat."),
    ] = None,  # noqa: UP007
) -> None:
    """Create a subscription (POST /api/subscriptions); prints it as JSON (secret masked)."""
    import json

    chosen = [c for c in (webhook, email, slack, pagerduty, teams, discord, telegram) if c]
    if len(chosen) != 1:
        err.print(
            "[red]error:[/red] give exactly one of --webhook, --email, --slack, --pagerduty,"
            " --teams, --discord, --telegram"
        )
        raise typer.Exit(2)
    # Secrets never come from the command line (shell history, `ps`): environment or prompt.
    if webhook:
        secret = _secret("CPWATCH_WEBHOOK_SECRET", "webhook HMAC secret (16+ characters)")
        channel: dict[str, object] = {"type": "webhook", "url": webhook, "secret": secret}
    elif email:
        channel = {"type": "email", "address": email}
    elif pagerduty:
        key = _secret("CPWATCH_PAGERDUTY_ROUTING_KEY", "PagerDuty routing key")
        channel = {"type": "pagerduty", "routing_key": key}
    elif teams or discord:
        channel = {"type": "teams" if teams else "discord", "url": teams or discord}
    elif telegram:
        token = _secret("CPWATCH_TELEGRAM_BOT_TOKEN", "Telegram bot token")
        channel = {"type": "telegram", "chat_id": telegram, "bot_token": token}
    else:
        channel = {"type": "slack", "url": slack}
    body: dict[str, object] = {
        "name": name,
        "query": query,
        "channel": channel,
        "filters": {
            "countries": country or [],
            "categories": category or [],
            "holders": holder or [],
        },
    }
    if group_wait:
        body["group_wait"] = group_wait
    if group_interval:
        body["group_interval"] = group_interval
    if group_by:
        body["group_by"] = group_by
    sys.stdout.write(json.dumps(_api("POST", "/api/subscriptions", json=body)) + "\n")


@subscriptions_app.command("list")
def subscriptions_list() -> None:
    """List subscriptions (secrets masked)."""
    import json

    result = _api("GET", "/api/subscriptions", params={"size": 1000})
    assert isinstance(result, dict)
    for sub in result["subscriptions"]:
        sys.stdout.write(json.dumps(sub) + "\n")


@subscriptions_app.command("delete")
def subscriptions_delete(sub_id: Annotated[str, typer.Argument(help="Subscription id.")]) -> None:
    """Delete a subscription."""
    _api("DELETE", f"/api/subscriptions/{sub_id}")
    err.print(f"deleted {sub_id}")


@subscriptions_app.command("test")
def subscriptions_test(sub_id: Annotated[str, typer.Argument(help="Subscription id.")]) -> None:
    """Send a sample message to the subscription's channel now; exit 1 if it failed."""
    import json

    result = _api("POST", f"/api/subscriptions/{sub_id}/test")
    sys.stdout.write(json.dumps(result) + "\n")
    if not (isinstance(result, dict) and result.get("delivered")):
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except CpwatchError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
