import pytest

from shared import topics


def test_device_topic_roundtrip() -> None:
    t = topics.alert("home-1", "pt-1", "watch-1")
    assert t == "cm/v1/home-1/pt-1/watch-1/alert"
    parts = topics.parse(t)
    assert (parts.site, parts.patient_id, parts.device_id, parts.kind) == ("home-1", "pt-1", "watch-1", "alert")


def test_presence_roundtrip() -> None:
    parts = topics.parse(topics.presence("s", "watch-9"))
    assert parts.kind == "presence" and parts.patient_id is None and parts.device_id == "watch-9"


@pytest.mark.parametrize("bad", ["a/b", "pt 1", "pt#", "pt/1", "", "+a", "x" * 65])
def test_unsafe_segments_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        topics.alert("site", bad, "watch")


@pytest.mark.parametrize("topic", ["cm/v2/s/p/d/alert", "cm/v1/s/p/d/unknown", "cm/v1/s", "other/x/y/z/alert"])
def test_parse_rejects_foreign_topics(topic: str) -> None:
    with pytest.raises(ValueError):
        topics.parse(topic)


def test_fl_topics_roundtrip() -> None:
    assert topics.fl_model_delta("watch-detector") == "cm/v1/fl/watch-detector/model_delta"
    for build, kind in ((topics.fl_round, "fl_round"), (topics.fl_model, "fl_model"),
                        (topics.fl_model_delta, "fl_model_delta")):
        parts = topics.parse(build("fed-1"))
        assert (parts.kind, parts.patient_id) == (kind, None)


def test_wildcards_and_shared() -> None:
    pattern = topics.escalation(topics.ANY, topics.ANY, topics.ANY)
    assert pattern == "cm/v1/+/+/+/escalation"
    assert topics.shared("cloud", pattern) == "$share/cloud/cm/v1/+/+/+/escalation"
