"""The transport's compiled MQTT matching agrees with paho's reference implementation (property test)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from shared.transport.base import matches

LEVEL = st.sampled_from(["a", "b", "cm", "v1", "", "x.y", "a-b"])
TOPIC = st.lists(LEVEL, min_size=1, max_size=6).map("/".join)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVEL, st.just("+")), min_size=1, max_size=6))
    if draw(st.booleans()):
        levels = [*levels[: draw(st.integers(0, len(levels)))], "#"]
    return "/".join(levels)


@settings(max_examples=3000, deadline=None)
@given(filters(), TOPIC)
def test_matches_like_paho(pattern: str, topic: str) -> None:
    assert matches(pattern, topic) == topic_matches_sub(pattern, topic), (pattern, topic)


def test_shared_subscriptions_match_their_filter_and_dollar_topics_stay_out_of_root_wildcards() -> None:
    assert matches("$share/cloud-ingest/cm/v1/+/+/+/escalation", "cm/v1/s/p/e/escalation")
    assert not matches("$share/g/cm/v1/+/+/+/escalation", "cm/v1/s/p/e/report")
    assert matches("a/#", "a") and matches("#", "a/b/c") and matches("a/+/c", "a//c")
    assert not matches("#", "$SYS/broker/version") and not matches("+/broker/version", "$SYS/broker/version")
    assert matches("$SYS/#", "$SYS/broker/version")
