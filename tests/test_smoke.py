import agentpulse


def test_event_roundtrip(ap):
    with agentpulse.session("s1"):
        agentpulse.event("hello", {"x": 1})
    kinds = [e["kind"] for e in ap.events()]
    assert kinds == ["process_start", "span_start", "event", "span_end"]
