from vault.sessions import list_sessions, record_flow, session_flows


def record(vault, flow_id, session_id="s1", at=1.0, counts=None):
    record_flow(
        vault, session_id=session_id, namespace="ns", principal="alice", flow_id=flow_id,
        at=at, method="POST", url="http://model/v1/chat/completions", status=200,
        entity_counts=counts or {"PERSON": 1}, decisions={"restored": 1},
        file=f"/rec/{session_id}.flows",
    )


def test_record_flow_updates_session(vault):
    record(vault, "f1", at=10.0)
    record(vault, "f2", at=12.0, counts={"PERSON": 2, "EMAIL_ADDRESS": 1})
    sessions = list_sessions(vault)
    assert len(sessions) == 1
    assert sessions[0].flow_count == 2
    assert sessions[0].entity_counts == {"PERSON": 3, "EMAIL_ADDRESS": 1}
    assert sessions[0].started_at == 10.0
    assert sessions[0].last_at == 12.0
    flows = session_flows(vault, "s1")
    assert [flow.id for flow in flows] == ["f1", "f2"]
    assert [flow.seq for flow in flows] == [1, 2]
    assert flows[0].decisions == {"restored": 1}


def test_recording_same_flow_twice_counts_once(vault):
    record(vault, "f1")
    record(vault, "f1")
    session = list_sessions(vault)[0]
    assert session.flow_count == 1
    assert session.entity_counts == {"PERSON": 1}
    assert len(session_flows(vault, "s1")) == 1


def test_sessions_listed_newest_first(vault):
    record(vault, "a", session_id="old", at=1.0)
    record(vault, "b", session_id="new", at=5.0)
    assert [session.id for session in list_sessions(vault)] == ["new", "old"]
