from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from notify.subscriptions import MASK, Subscription, redact_url, subscription_id
from streams.alerts import Alert

SECRET = "0123456789abcdef-secret"  # noqa: S105 - test value
HOOK = {"type": "webhook", "url": "https://hooks.example.org/in", "secret": SECRET}


def sub(**kw: Any) -> Subscription:
    return Subscription.model_validate({"name": "Policy desk", "channel": HOOK, **kw})


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"filters": {"countries": ["USA"]}}, "filters.countries.0"),
        ({"filters": {"rule_types": ["spike"]}}, "filters.rule_types.0"),
        ({"filters": {"min_severity": 1.5}}, "filters.min_severity"),
        ({"channel": {"type": "email", "address": "a@b.c, d@e.f"}}, "channel.email.address"),
        ({"channel": {"type": "slack", "url": "file:///etc/passwd"}}, "channel.slack.url"),
        ({"channel": {"type": "sms", "to": "+1"}}, "channel"),
        ({"channel": {**HOOK, "secret": "short"}}, "channel.webhook.secret"),
        ({"realert_window": "0s"}, "realert_window"),
        ({"group_interval": "soon"}, "group_interval"),
        ({"silence_until": "2024-03-05T00:00:00"}, "silence_until"),  # naive: refused
        ({"name": "x\ny"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_subscriptions_name_the_field(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        sub(**fields)
    locs = {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert where in locs


def test_defaults_and_durations() -> None:
    s = sub(
        realert_window="90m",
        group_wait="0s",
        group_interval="2m",
        filters={"countries": ["us", "GB"]},
    )
    assert s.realert_window == timedelta(minutes=90) and s.group_wait == timedelta(0)
    assert s.group_interval == timedelta(minutes=2) and s.filters.countries == ("US", "GB")
    d = sub()
    assert (d.realert_window, d.group_wait, d.group_interval) == (
        timedelta(hours=1),
        timedelta(seconds=10),
        timedelta(minutes=1),
    )
    assert d.created_at.tzinfo is not None


def test_id_is_deterministic_from_name_and_destination() -> None:
    assert sub().id == sub(name="  policy DESK").id == sub(realert_window="2h").id
    assert sub().id != sub(channel={**HOOK, "url": "https://other.example/in"}).id
    assert sub().id == subscription_id("Policy desk", "webhook", HOOK["url"])
    assert sub(id="mine").id == "mine"


def test_es_doc_round_trip_and_keyword_fields() -> None:
    s = sub(
        query='"strategic reserve" | ban',
        silence_until=datetime(2030, 1, 1, tzinfo=UTC),
        filters={"categories": ["reserve"], "holders": ["mstr"], "rule_types": ["drawdown"]},
    )
    doc = s.to_es_doc()
    assert doc["categories"] == ["reserve"] and doc["holders"] == ["mstr"]
    assert doc["query"] == '"strategic reserve" | ban' and doc["realert_window"] == 3600.0
    assert doc["channel"]["secret"] == SECRET  # the sender needs it back
    assert Subscription.from_es_doc(json.loads(json.dumps(doc))) == s


def test_secret_never_in_public_views_or_reprs() -> None:
    s = sub(channel={**HOOK, "url": "https://user:pw@hooks.example.org/in?token=abc"})
    public = json.dumps(s.public_dict())
    for text in (public, repr(s), str(s)):
        assert SECRET not in text
    assert "token=abc" not in public and "user:pw" not in public
    assert s.public_dict()["channel"]["secret"] == MASK
    slack = sub(channel={"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XYZ"})
    assert "XYZ" not in json.dumps(slack.public_dict()) and "XYZ" not in repr(slack)
    assert redact_url("http://[::1]:8080/a") == "http://[::1]:8080/a"


def test_event_and_alert_matching() -> None:
    s = sub(
        filters={
            "countries": ["US"],
            "categories": ["reserve", "ban"],
            "min_severity": 0.5,
            "holders": ["acme"],
            "rule_types": ["below_cost"],
        }
    )
    event = {
        "countries": ["US", "SV"],
        "categories": ["reserve"],
        "severity": 0.7,
        "holders": ["acme"],
    }
    assert s.matches_event(event)
    assert not s.matches_event({**event, "holders": []})
    assert not s.matches_event({**event, "severity": 0.2})
    assert not s.matches_event({**event, "countries": ["CN"]})
    assert not s.matches_event({"severity": 0.9})
    assert sub().matches_event({})  # no filters: everything
    alert = Alert("r1", "acme", datetime(2024, 1, 1, tzinfo=UTC), "down", 1, 2, 3, 4)
    assert s.matches_alert(alert, "below_cost")
    assert not s.matches_alert(alert, "level")
    assert not s.matches_alert(Alert("r1", "other", alert.ts, "down", 1, 2, 3, 4), "below_cost")


def test_holder_filter_matches_events_linked_to_the_holder() -> None:
    from notify.alert_processor import wants_alerts, wants_events
    from notify.matcher import subscription_query

    s = sub(filters={"holders": ["El Salvador"]})
    assert s.matches_event({"holders": ["El Salvador", "Pakistan"]})
    assert not s.matches_event({"holders": ["Bhutan"]})
    assert not s.matches_event({})  # an event linked to no holder
    assert wants_events(s) and wants_alerts(s)  # a holder's events and its alerts
    ruled = sub(filters={"holders": ["El Salvador"], "rule_types": ["level"]})
    assert wants_alerts(ruled) and not wants_events(ruled)
    clauses = subscription_query(sub(query="reserve", filters={"holders": ["Bhutan"]}), ["a"])
    assert {"terms": {"holders": ["Bhutan"]}} in clauses["bool"]["filter"]


def test_event_query_wraps_the_text_query() -> None:
    q = sub(query="reserve -rumour").event_query("e1")
    assert q["bool"]["filter"][0] == {"ids": {"values": ["e1"]}}
    assert q["bool"]["filter"][1]["simple_query_string"]["query"] == "reserve -rumour"
    assert len(sub().event_query("e1")["bool"]["filter"]) == 1


def test_silenced() -> None:
    until = datetime(2024, 1, 1, 12, tzinfo=UTC)
    s = sub(silence_until=until)
    assert s.silenced(until - timedelta(seconds=1)) and not s.silenced(until)
    assert not sub().silenced(until)
