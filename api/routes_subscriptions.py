"""Subscriptions and alerts over HTTP.

``/api/subscriptions`` (POST, GET, GET/PUT/DELETE ``/{id}``, POST ``/{id}/test``,
POST ``/{id}/silence?until=...``) and ``/api/alerts`` (GET, POST ``/{fingerprint}/ack``).
Every route needs ``Authorization: Bearer <token>`` (``api/auth.py``): reads a token of read
or write scope, changes (ack included) one of write scope. Channel URLs (not e-mail) pass the SSRF
guard at creation (allowlist ``CPWATCH_DELIVERY_SSRF_ALLOWLIST``), and again at every send.
Responses never carry secrets and mask subscriber contacts: ``public_dict`` then
``api/masking.py``.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Annotated, Any

from elasticsearch import Elasticsearch, NotFoundError
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from pydantic import ValidationError

from api.auth import ReadDep, WriteDep
from api.auth import api_settings as subscription_settings
from api.masking import public_subscription
from cpwatch import secretbox
from cpwatch.records import utcnow
from cpwatch.settings import Settings
from notify import candidates
from notify.ssrf import UnsafeUrlError, check_url
from notify.subscriptions import Subscription

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["subscriptions"])
_lock = threading.Lock()
MAX_LIST = 1_000


# subscription_settings (= api.auth.api_settings): tests override it for every API route.
SettingsDep = Annotated[Settings, Depends(subscription_settings)]


def es_client(request: Request, settings: SettingsDep) -> Elasticsearch:
    with _lock:
        es = getattr(request.app.state, "subscriptions_es", None)
        if es is None:
            es = Elasticsearch(**settings.es_client_kwargs())
            request.app.state.subscriptions_es = es
    return es


EsDep = Annotated[Elasticsearch, Depends(es_client)]


AuthDep = WriteDep  # the name routes (and api/routes_ingest.py) used for "needs a token"


async def _validated(
    body: dict[str, Any], settings: Settings, sub_id: str | None = None
) -> Subscription:
    if not isinstance(body, dict):
        raise HTTPException(422, "body must be a JSON object")
    if sub_id is not None:
        body = {**body, "id": sub_id}
    try:
        sub = Subscription.model_validate(body)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(422, errors) from None
    if (url := sub.channel.endpoint_url) is not None:  # every channel but e-mail
        try:
            await check_url(url, settings.ssrf_allowlist)
        except UnsafeUrlError as exc:
            raise HTTPException(422, f"channel.url refused: {exc}") from None
        except OSError as exc:
            raise HTTPException(422, f"channel.url does not resolve: {exc}") from None
        except UnicodeError as exc:  # a host name IDNA cannot encode (empty or 64+ char label)
            raise HTTPException(422, f"channel.url host cannot be encoded: {exc}") from None
    return sub


def _load(es: Elasticsearch, settings: Settings, sub_id: str) -> Subscription:
    try:
        doc = es.get(index=settings.index("subscriptions"), id=sub_id)
    except NotFoundError:
        raise HTTPException(404, f"no subscription {sub_id}") from None
    return _read(settings, doc["_source"])


def _read(settings: Settings, source: dict[str, Any]) -> Subscription:
    """A stored subscription, its channel secrets decrypted (CPWATCH_SECRET_KEY[_OLD])."""
    try:
        return Subscription.from_es_doc(source, secretbox.from_settings(settings))
    except secretbox.SecretBoxError as exc:
        log.error("subscription %s unreadable: %s", source.get("id"), exc)
        raise HTTPException(500, f"subscription {source.get('id')} cannot be decrypted") from None


def _save(es: Elasticsearch, settings: Settings, sub: Subscription) -> None:
    # Its candidate document first, so the matcher finds it as soon as it sees the subscription.
    # Best effort: the matcher's sync stores any one missing or stale on its next reload.
    try:
        candidates.index_subscription(es, settings, sub)
    except Exception as exc:  # noqa: BLE001
        log.warning("candidate document of %s not stored (%r); the matcher will", sub.id, exc)
    es.index(
        index=settings.index("subscriptions"),
        id=sub.id,
        document=sub.to_es_doc(secretbox.from_settings(settings)),
        refresh="wait_for",
    )


@router.post("/subscriptions", status_code=201)
async def create_subscription(
    settings: SettingsDep, es: EsDep, _who: AuthDep, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create (or, same name and destination, overwrite) a subscription."""
    sub = await _validated(body, settings)
    _save(es, settings, sub)
    return public_subscription(sub.public_dict())


@router.get("/subscriptions")
def list_subscriptions(
    settings: SettingsDep,
    es: EsDep,
    _who: ReadDep,
    size: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000 - MAX_LIST)] = 0,
) -> dict[str, Any]:
    resp = es.options(ignore_status=404).search(
        index=settings.index("subscriptions"),
        size=size,
        from_=offset,
        sort=[{"name": "asc"}, {"id": "asc"}],
        query={"match_all": {}},
    )
    hits = resp.get("hits", {})
    subs = [
        public_subscription(_read(settings, h["_source"]).public_dict())
        for h in hits.get("hits", [])
    ]
    return {"total": hits.get("total", {}).get("value", 0), "subscriptions": subs}


@router.get("/subscriptions/{sub_id}")
def get_subscription(
    settings: SettingsDep, es: EsDep, _who: ReadDep, sub_id: str
) -> dict[str, Any]:
    return public_subscription(_load(es, settings, sub_id).public_dict())


@router.put("/subscriptions/{sub_id}")
async def replace_subscription(
    settings: SettingsDep,
    es: EsDep,
    _who: AuthDep,
    sub_id: str,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    _load(es, settings, sub_id)  # 404 if absent
    sub = await _validated(body, settings, sub_id)
    _save(es, settings, sub)
    return public_subscription(sub.public_dict())


@router.delete("/subscriptions/{sub_id}", status_code=204)
def delete_subscription(settings: SettingsDep, es: EsDep, _who: AuthDep, sub_id: str) -> Response:
    try:
        es.delete(index=settings.index("subscriptions"), id=sub_id, refresh="wait_for")
    except NotFoundError:
        raise HTTPException(404, f"no subscription {sub_id}") from None
    try:
        candidates.delete_subscription(es, settings, sub_id)
    except Exception as exc:  # noqa: BLE001 - an orphan is never matched: not in the cache
        log.warning("candidate document of %s not deleted (%r)", sub_id, exc)
    return Response(status_code=204)


@router.post("/subscriptions/{sub_id}/silence")
def silence_subscription(
    settings: SettingsDep,
    es: EsDep,
    _who: AuthDep,
    sub_id: str,
    until: Annotated[str, Query(description="ISO-8601 with timezone; a past time un-silences")],
) -> dict[str, Any]:
    try:
        # A "+" left unencoded in a query string arrives as a space.
        when = datetime.fromisoformat(until.strip().replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, "until: not an ISO-8601 datetime") from None
    if when.tzinfo is None:
        raise HTTPException(400, "until: needs a timezone (e.g. 2025-06-01T00:00:00Z)")
    sub = _load(es, settings, sub_id).model_copy(update={"silence_until": when})
    _save(es, settings, sub)
    return public_subscription(sub.public_dict())


SAMPLE_EVENT: dict[str, Any] = {
    "id": "cpwatch-test",
    "title": "cpwatch test message: your subscription works",
    "url": "https://example.org/cpwatch-test",
    "source": "cpwatch",
    "categories": ["test"],
    "countries": [],
    "orgs": [],
    "severity": 0.0,
    "cluster_id": "cpwatch-test",
}


@router.post("/subscriptions/{sub_id}/test")
async def test_subscription(
    settings: SettingsDep, es: EsDep, _who: AuthDep, sub_id: str
) -> dict[str, Any]:
    """Send one sample message now (one attempt, SSRF-checked) and report how it went."""
    from notify.senders import Senders

    sub = _load(es, settings, sub_id)
    one = settings.model_copy(update={"delivery_max_attempts": 1})
    senders = Senders.from_settings(one)
    event = {**SAMPLE_EVENT, "published": utcnow().isoformat()}
    delivery_id = f"test-{sub.id}-{int(utcnow().timestamp())}"
    try:
        result = await senders.delivery(sub, delivery_id, [event], one).send(lambda _a: None)
    finally:
        await senders.aclose()
    return {
        "delivered": result.delivered,
        "delivery_id": delivery_id,
        "attempts": [
            {"n": a.n, "status": a.status, "latency_ms": a.latency_ms, "error": a.error}
            for a in result.attempts
        ],
    }


@router.get("/alerts")
def list_alerts(
    settings: SettingsDep,
    es: EsDep,
    _who: ReadDep,
    holder: str | None = None,
    size: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
    unacked: bool = False,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    if holder:
        filters.append({"term": {"holder": holder}})
    must_not = [{"exists": {"field": "acked_at"}}] if unacked else []
    resp = es.options(ignore_status=404).search(
        index=settings.index("alerts"),
        size=size,
        sort=[{"ts": "desc"}],
        query={"bool": {"filter": filters, "must_not": must_not}},
    )
    hits = resp.get("hits", {})
    return {
        "total": hits.get("total", {}).get("value", 0),
        "alerts": [h["_source"] for h in hits.get("hits", [])],
    }


@router.post("/alerts/{fingerprint}/ack")
def ack_alert(settings: SettingsDep, es: EsDep, who: WriteDep, fingerprint: str) -> dict[str, Any]:
    try:
        es.update(
            index=settings.index("alerts"),
            id=fingerprint,
            refresh="wait_for",
            doc={"acked_at": utcnow().isoformat(), "acked_by": who.label},
        )
    except NotFoundError:
        raise HTTPException(404, f"no alert {fingerprint}") from None
    return es.get(index=settings.index("alerts"), id=fingerprint)["_source"]
