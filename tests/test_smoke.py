import agentpulse


def test_event_roundtrip(ap):
    with agentpulse.session("s1"):
        agentpulse.event("hello", {"x": 1})
    kinds = [e["kind"] for e in ap.events()]
    assert kinds == ["process_start", "span_start", "event", "span_end"]


def test_patch_and_unpatch_are_public(ap):
    import openai.resources.chat.completions.completions as mod

    from agentpulse.patching.engine import is_patched

    assert is_patched(mod.Completions, "create")
    restored = agentpulse.unpatch("openai")
    assert restored and not is_patched(mod.Completions, "create")
    assert "openai" in agentpulse.patch("openai")
    assert is_patched(mod.Completions, "create")


def test_debug_true_prints_the_sdk_debug_lines_to_stderr(capture, capfd):
    capture(debug=True)
    err = capfd.readouterr().err
    assert "agentpulse DEBUG" in err and "started" in err


def test_propagate_context_false_leaves_threads_alone(capture):
    import threading

    cap = capture(propagate_context=False)
    seen = []
    with agentpulse.session("s"):
        t = threading.Thread(target=lambda: seen.append(agentpulse.current_span()))
        t.start()
        t.join()
    assert seen == [None]
    assert cap.events("span_end")
