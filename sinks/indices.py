"""Index templates and aliases, installed idempotently at startup.

Each logical index is an alias over a concrete ``<alias>-v<version>`` index, so a mapping change
ships as a new template version: create the next index, reindex, swap the alias, no downtime.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import BadRequestError, Elasticsearch

from cpwatch.settings import Settings
from notify.candidates import CANDIDATE_PROPERTIES
from notify.subscriptions import SUBSCRIPTION_PROPERTIES

log = logging.getLogger(__name__)

# Template version per logical index; a mapping change bumps it (then `cpwatch indices migrate`).
# 2 = English analysis (stemming, possessives) on the text indices; 1 = their old analyzer.
TEMPLATE_VERSION = 2
TEXT_INDICES = ("articles", "events", "match-scratch")
PLAIN_TEXT_VERSION = 1  # what a text index gets on a cluster without an `english` analyzer

# Elasticsearch's `english` analyzer: standard tokenizer, possessive 's removed, lowercase,
# English stop words, Porter stemmer. Full distributions have it built in (analysis-common);
# cpwatch's local stack runs the integ-test-zip, which lacks that module, and gets the same
# analyzer from our own stable plugin (deploy/es-plugin, installed by `cpwatch stack up`).
ENGLISH = "english"

# The old analyzer, built from core parts only: used where no `english` analyzer exists (a node
# started before the plugin was installed), so indexing never stops over it.
PLAIN_ANALYSIS: dict[str, Any] = {
    "analyzer": {
        "cpwatch_text": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "cpwatch_stop"],
        }
    },
    "filter": {"cpwatch_stop": {"type": "stop", "stopwords": "_english_"}},
}

_KEYWORD_TEXT: dict[str, Any] = {
    "type": "text",
    "analyzer": ENGLISH,
    "fields": {"raw": {"type": "keyword", "ignore_above": 512}},
}

ARTICLE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "keyword"},
    "title": _KEYWORD_TEXT,
    "text": {"type": "text", "analyzer": ENGLISH},
    "source": {"type": "keyword"},
    "url": {"type": "keyword", "ignore_above": 2048},
    "lang": {"type": "keyword"},
    "published": {"type": "date"},
    "fetched_at": {"type": "date"},
    "ingested_at": {"type": "date"},
    "is_policy_event": {"type": "boolean"},
    "categories": {"type": "keyword"},
    "countries": {"type": "keyword"},
    "orgs": {"type": "keyword"},
    "severity": {"type": "float"},
    "evidence": {"type": "text", "analyzer": ENGLISH},
    "amounts": {
        "properties": {
            "value": {"type": "double"},
            "unit": {"type": "keyword"},
            "text": {"type": "keyword"},
        }
    },
    "cluster_id": {"type": "keyword"},
}

ALERT_PROPERTIES: dict[str, Any] = {
    "fingerprint": {"type": "keyword"},
    "rule": {"type": "keyword"},
    "holder": {"type": "keyword"},
    "ts": {"type": "date"},
    "direction": {"type": "keyword"},
    "value_usd": {"type": "double"},
    "threshold_usd": {"type": "double"},
    "price": {"type": "double"},
    "btc": {"type": "double"},
    # Set by POST /api/alerts/{fingerprint}/ack.
    "acked_at": {"type": "date"},
    "acked_by": {"type": "keyword"},
}

# One document per delivery attempt (notify/delivery_agent.py).
DELIVERY_ATTEMPT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "keyword"},
    "delivery_id": {"type": "keyword"},
    "subscription": {"type": "keyword"},
    "channel": {"type": "keyword"},
    "endpoint": {"type": "keyword"},
    "attempt": {"type": "integer"},
    "status": {"type": "integer"},
    "ok": {"type": "boolean"},
    "latency_ms": {"type": "float"},
    "error": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
    "at": {"type": "date"},
}

VALUATION_PROPERTIES: dict[str, Any] = {
    "id": {"type": "keyword"},
    "holder": {"type": "keyword"},
    "name": {"type": "keyword"},
    "kind": {"type": "keyword"},
    "symbol": {"type": "keyword"},
    "ts": {"type": "date"},
    "price": {"type": "double"},
    "btc": {"type": "double"},
    "value_usd": {"type": "double"},
}

# Treasury holders a policy event concerns (streams/holder_links), on events and the scratch
# index that matches subscriptions' ``holders`` filter.
_HOLDERS: dict[str, Any] = {"holders": {"type": "keyword"}}
# Fields added after indices were created: a new keyword field needs no new index version,
# so ensure_indices also puts them on the existing index (documents indexed before lack them).
_MEMBER_COUNT: dict[str, Any] = {"member_count": {"type": "integer"}}  # of the story's copies
ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "events": {**_HOLDERS, **_MEMBER_COUNT},
    "match-scratch": _HOLDERS,
}

MAPPINGS: dict[str, dict[str, Any]] = {
    "articles": {"dynamic": "false", "properties": ARTICLE_PROPERTIES},
    "events": {
        "dynamic": "false",
        "properties": {
            **ARTICLE_PROPERTIES,
            "members": {"type": "keyword"},
            **_MEMBER_COUNT,
            **_HOLDERS,
        },
    },
    "alerts": {"dynamic": "false", "properties": ALERT_PROPERTIES},
    "treasury-valuations": {"dynamic": "false", "properties": VALUATION_PROPERTIES},
    "subscriptions": {"dynamic": "false", "properties": SUBSCRIPTION_PROPERTIES},
    "delivery-attempts": {"dynamic": "false", "properties": DELIVERY_ATTEMPT_PROPERTIES},
    # What an event must contain for each subscription to match it (notify/candidates.py).
    "match-candidates": {"dynamic": "false", "properties": CANDIDATE_PROPERTIES},
    # Scratch space of notify/matcher.py: a batch's events live here for one _msearch.
    "match-scratch": {
        "dynamic": "false",
        "properties": {**ARTICLE_PROPERTIES, "members": {"type": "keyword"}, **_HOLDERS},
    },
}

# Extra index settings per logical index. The scratch index sets its refresh interval
# explicitly: that keeps it out of "search idle" mode, so ``refresh=wait_for`` returns within
# 100 ms instead of waiting for the next search to wake the shard.
INDEX_SETTINGS: dict[str, dict[str, Any]] = {"match-scratch": {"refresh_interval": "100ms"}}


# Time series: one index per month behind the alias, so old months are dropped whole
# (`prune_time_series`) instead of growing one index forever. Within a month, documents are
# already one per holder and minute (see streams/treasury_agent.py).
TIME_SERIES = {"treasury-valuations"}


def version_of(name: str, english: bool = True) -> int:
    """The template version ``name`` gets: text indices are at 1 while no english analyzer."""
    if name in TEXT_INDICES and not english:
        return PLAIN_TEXT_VERSION
    return TEMPLATE_VERSION if name in TEXT_INDICES else 1


def concrete_index(settings: Settings, name: str, english: bool = True) -> str:
    return f"{settings.index(name)}-v{version_of(name, english)}"


def monthly_index(settings: Settings, name: str, ts: str) -> str:
    """The month's index for an ISO timestamp, e.g. ``cpwatch-treasury-valuations-v1-2025.03``."""
    return f"{concrete_index(settings, name)}-{ts[:4]}.{ts[5:7]}"


def has_english(es: Elasticsearch) -> bool:
    """Whether the cluster knows the analyzer `english` (built in, or our plugin)."""
    try:
        es.indices.analyze(analyzer=ENGLISH, text="mining")
    except BadRequestError:
        return False
    return True


def _mapping(mapping: dict[str, Any], english: bool) -> dict[str, Any]:
    """The mapping with every `english` text field on the old analyzer when ``not english``."""
    if english:
        return mapping

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("cpwatch_text" if k == "analyzer" and v == ENGLISH else swap(v))
                for k, v in node.items()
            }
        return node

    return swap(mapping)  # type: ignore[no-any-return]


def ensure_indices(
    es: Elasticsearch,
    settings: Settings,
    names: list[str] | None = None,
    *,
    english: bool | None = None,
) -> None:
    """Install each template and create its first index behind the alias. Safe to repeat.

    An alias that already exists is left where it points, even on an older version: moving it
    is `migrate`'s job (``cpwatch indices migrate NAME --version N``), copying its documents.
    ``english`` is asked of the cluster unless given (False: the old analyzer, for comparisons).
    """
    if english is None:
        english = has_english(es)
        if not english:
            log.warning(
                "Elasticsearch at %s has no `english` analyzer: text indices keep the old"
                " analyzer (no stemming). Local stack: cpwatch stack down && cpwatch stack up.",
                settings.es_url,
            )
    for name in names or list(MAPPINGS):
        alias = settings.index(name)
        index_settings: dict[str, Any] = {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            **INDEX_SETTINGS.get(name, {}),
        }
        if not english:
            index_settings["analysis"] = PLAIN_ANALYSIS
        template: dict[str, Any] = {
            "settings": index_settings,
            "mappings": _mapping(MAPPINGS[name], english),
        }
        if name in TIME_SERIES:
            template["aliases"] = {alias: {}}  # every monthly index joins the read alias
        es.indices.put_index_template(
            name=alias,
            index_patterns=[f"{alias}-v*"],
            version=version_of(name, english),
            priority=100,
            template=template,
        )
        if name in TIME_SERIES:
            continue  # monthly indices are created on first write
        index = concrete_index(settings, name, english)
        if es.indices.exists_alias(name=alias):
            current = sorted(es.indices.get_alias(name=alias))
            if index not in current:
                log.warning(
                    "%s is on %s; template version %d awaits `cpwatch indices migrate %s"
                    " --version %d`",
                    alias,
                    ", ".join(current),
                    version_of(name, english),
                    name,
                    version_of(name, english),
                )
            if name in ADDED_FIELDS:  # additive: also onto an index made before the field
                es.indices.put_mapping(index=alias, properties=ADDED_FIELDS[name])
            continue
        if not es.indices.exists(index=index):
            try:
                es.indices.create(index=index, aliases={alias: {"is_write_index": True}})
            except BadRequestError as exc:
                # Two workers starting together both saw it missing: the other one created it.
                if exc.error != "resource_already_exists_exception":
                    raise


def prune_time_series(
    es: Elasticsearch, settings: Settings, name: str, keep_months: int, today: str
) -> list[str]:
    """Delete the monthly indices older than ``keep_months`` before ``today`` (ISO date)."""
    year, month = int(today[:4]), int(today[5:7])
    cutoff_n = year * 12 + month - 1 - keep_months
    doomed = []
    prefix = f"{concrete_index(settings, name)}-"
    for index in es.indices.get(index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True):
        stamp = index.removeprefix(prefix)
        try:
            y, m = (int(p) for p in stamp.split("."))
        except ValueError:
            continue
        if y * 12 + m - 1 < cutoff_n:
            doomed.append(index)
    if doomed:
        es.indices.delete(index=",".join(doomed))
    return doomed


def migrate(es: Elasticsearch, settings: Settings, name: str, version: int) -> str:
    """Move an alias to a fresh ``-v<version>`` index without downtime; returns the new index.

    The new index takes the current template (install it first with ``ensure_indices``).
    Documents are copied client-side (scan + bulk: this distribution has no ``_reindex``
    module) while the old index keeps serving; then one atomic alias update swaps reads and
    writes. Deterministic ids make a re-run, or writes racing the copy, harmless.
    """
    from elasticsearch import helpers

    if name in TIME_SERIES:
        raise ValueError(f"{name} is a monthly series: new months already take the new template")
    if name in TEXT_INDICES and version > PLAIN_TEXT_VERSION and not has_english(es):
        raise ValueError(
            f"this cluster has no `english` analyzer, so {name} v{version} cannot be built; on"
            " the local stack restart Elasticsearch (cpwatch stack down && cpwatch stack up)"
        )
    alias = settings.index(name)
    target = f"{alias}-v{version}"
    old = sorted(es.indices.get_alias(name=alias))
    if target in old:
        return target
    if not es.indices.exists(index=target):
        es.indices.create(index=target)
    # helpers.reindex would probe the data-stream API, also absent here: scan + bulk directly.
    copies = (
        {"_index": target, "_id": hit["_id"], "_source": hit["_source"]}
        for hit in helpers.scan(es, index=alias, size=1000, query={"query": {"match_all": {}}})
    )
    helpers.bulk(es, copies, chunk_size=1000)
    actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": alias}} for i in old]
    actions.append({"add": {"index": target, "alias": alias, "is_write_index": True}})
    es.indices.update_aliases(actions=actions)
    es.indices.refresh(index=target)
    if old:
        es.indices.delete(index=",".join(old))
    return target
