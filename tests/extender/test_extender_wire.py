"""The wire models read and write exactly what kube-scheduler's Go structs marshal.

Payloads below are written as kube-scheduler's ``encoding/json`` produces them: PascalCase keys,
nil pointers/slices/maps as ``null``, no type meta on informer objects, ``items: null`` for an
empty NodeList.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import kube

from gpufair.api import extender_wire as wire


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_filter_args_in_node_cache_capable_mode() -> None:
    pod = kube.pod("train", gpus=4)
    args = wire.decode(
        wire.ExtenderArgs, body({"Pod": pod, "Nodes": None, "NodeNames": ["n1", "n2"]})
    )
    assert args.names_only
    assert args.candidate_names() == ["n1", "n2"]
    assert args.pod == pod


def test_filter_args_with_full_nodes() -> None:
    nodes = {"metadata": {}, "items": [kube.node("n1"), kube.node("n2")]}
    args = wire.decode(
        wire.ExtenderArgs, body({"Pod": kube.pod(), "Nodes": nodes, "NodeNames": None})
    )
    assert not args.names_only
    assert args.candidate_names() == ["n1", "n2"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            {"Pod": kube.pod(), "Nodes": {"metadata": {}, "items": None}}, id="items-null"
        ),
        pytest.param({"Pod": kube.pod(), "Nodes": {"metadata": {}}}, id="items-absent"),
        pytest.param({"Pod": kube.pod(), "NodeNames": None}, id="names-null-nodes-absent"),
        pytest.param({"Pod": kube.pod()}, id="both-absent"),
    ],
)
def test_empty_candidate_lists(payload: dict[str, Any]) -> None:
    assert wire.decode(wire.ExtenderArgs, body(payload)).candidate_names() == []


def test_unknown_keys_are_ignored_like_go_does() -> None:
    args = wire.decode(
        wire.ExtenderArgs, body({"Pod": kube.pod(), "NodeNames": ["n1"], "Future": {"x": 1}})
    )
    assert args.candidate_names() == ["n1"]


def test_filter_result_is_written_with_every_go_key() -> None:
    result = wire.ExtenderFilterResult(
        node_names=["n1"],
        failed_nodes={"n2": "no free NVLink island of 4 GPUs (largest free: 2)"},
        failed_and_unresolvable_nodes={},
    )
    assert json.loads(wire.encode(result)) == {
        "Nodes": None,
        "NodeNames": ["n1"],
        "FailedNodes": {"n2": "no free NVLink island of 4 GPUs (largest free: 2)"},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }


def test_filter_result_with_full_nodes_keeps_the_envelope() -> None:
    nodes = wire.NodeList.model_validate({"metadata": {"resourceVersion": "9"}, "items": None})
    result = wire.ExtenderFilterResult(nodes=nodes.with_items([kube.node("n1")]))
    written = json.loads(wire.encode(result))
    assert written["NodeNames"] is None
    assert written["Nodes"]["metadata"] == {"resourceVersion": "9"}
    assert [n["metadata"]["name"] for n in written["Nodes"]["items"]] == ["n1"]


def test_filter_result_as_kube_scheduler_reads_it_back() -> None:
    """The e2e driver decodes our answers like kube-scheduler does: null maps and Error."""
    result = wire.ExtenderFilterResult.model_validate_json(
        b'{"Nodes":null,"NodeNames":null,"FailedNodes":null,'
        b'"FailedAndUnresolvableNodes":null,"Error":"boom"}'
    )
    assert result.node_names is None
    assert result.error == "boom"


def test_priorities_are_a_bare_list_of_host_and_score() -> None:
    written = json.loads(wire.encode_priorities({10: ["n1", "n3"], 0: ["n2"], 5: []}))
    assert written == [
        {"Host": "n1", "Score": 10},
        {"Host": "n3", "Score": 10},
        {"Host": "n2", "Score": 0},
    ]
    read_back = wire.HostPriorityList.validate_json(json.dumps(written))
    assert [(p.host, p.score) for p in read_back] == [("n1", 10), ("n3", 10), ("n2", 0)]


@pytest.mark.parametrize("score", [-1, 11])
def test_scores_outside_0_to_10_are_refused(score: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.10"):
        wire.encode_priorities({score: ["n1"]})


def test_priorities_with_names_that_need_escaping_are_still_valid_json() -> None:
    odd = 'we"ird\\name\u00e9'
    written = json.loads(wire.encode_priorities({3: [odd, "n1"]}))
    assert written == [{"Host": odd, "Score": 3}, {"Host": "n1", "Score": 3}]


HOSTS = st.text(alphabet=st.sampled_from('ab-.9"\\\u00e9\n'), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    hosts=st.lists(HOSTS, max_size=30),
    score_of=st.dictionaries(st.integers(0, 6), st.integers(0, 10), min_size=1, max_size=5),
)
def test_scores_are_written_in_host_order_each_with_its_keys_score(
    data: st.DataObject, hosts: list[str], score_of: dict[int, int]
) -> None:
    """Whatever the hosts (names needing escapes included) and however many keys share a
    score, the answer lists every host once, in order, with the score of its key."""
    keys = data.draw(
        st.lists(st.sampled_from(sorted(score_of)), min_size=len(hosts), max_size=len(hosts))
    )
    written = json.loads(wire.encode_scores(wire.Scores(hosts=hosts, keys=keys, score_of=score_of)))
    assert written == [
        {"Host": host, "Score": score_of[key]} for host, key in zip(hosts, keys, strict=True)
    ]


def test_scores_with_a_key_for_each_host_only() -> None:
    with pytest.raises(ValueError, match="2 hosts but 1 score keys"):
        wire.encode_scores(wire.Scores(hosts=["n1", "n2"], keys=[0], score_of={0: 1}))


def test_preempt_args_by_uid() -> None:
    payload = {
        "Pod": kube.pod(),
        "NodeNameToVictims": None,
        "NodeNameToMetaVictims": {
            "n1": {"Pods": [{"UID": "u1"}, {"UID": "u2"}], "NumPDBViolations": 1},
            "n2": None,
            "n3": {"Pods": None, "NumPDBViolations": 0},
        },
    }
    proposals = wire.decode(wire.ExtenderPreemptionArgs, body(payload)).proposals()
    assert proposals["n1"].uids == ["u1", "u2"]
    assert proposals["n1"].num_pdb_violations == 1
    assert proposals["n2"].uids == []
    assert proposals["n3"].uids == []


def test_preempt_args_with_full_victim_pods_become_uids() -> None:
    victim = kube.pod("old", gpus=2, node="n1", pod_uid="u9")
    payload = {
        "Pod": kube.pod(),
        "NodeNameToVictims": {"n1": {"Pods": [victim], "NumPDBViolations": 0}},
    }
    proposals = wire.decode(wire.ExtenderPreemptionArgs, body(payload)).proposals()
    assert proposals["n1"].uids == ["u9"]


def test_preempt_result_always_uses_meta_victims() -> None:
    result = wire.ExtenderPreemptionResult(
        node_name_to_meta_victims={
            "n1": wire.MetaVictims(pods=[wire.MetaPod(uid="u1")], num_pdb_violations=0)
        }
    )
    assert json.loads(wire.encode(result)) == {
        "NodeNameToMetaVictims": {"n1": {"Pods": [{"UID": "u1"}], "NumPDBViolations": 0}}
    }


def test_binding_args_and_result() -> None:
    args = wire.decode(
        wire.ExtenderBindingArgs,
        b'{"PodName":"train","PodNamespace":"team-a","PodUID":"u1","Node":"n1"}',
    )
    assert (args.pod_name, args.pod_namespace, args.pod_uid, args.node) == (
        "train",
        "team-a",
        "u1",
        "n1",
    )
    assert json.loads(wire.encode(wire.ExtenderBindingResult())) == {"Error": ""}


@pytest.mark.parametrize(
    ("model", "payload", "message"),
    [
        pytest.param(wire.ExtenderArgs, b"", "ExtenderArgs: empty request body", id="empty"),
        pytest.param(wire.ExtenderArgs, b"{not json", "body is not valid JSON", id="not-json"),
        pytest.param(wire.ExtenderArgs, b'{"NodeNames": []}', "Pod: Field required", id="no-pod"),
        pytest.param(wire.ExtenderArgs, b'{"Pod": null}', "Pod: Input should be", id="null-pod"),
        pytest.param(
            wire.ExtenderArgs,
            body({"Pod": kube.pod(), "NodeNames": "n1"}),
            "NodeNames: Input should be a valid array",
            id="names-not-list",
        ),
        pytest.param(
            wire.ExtenderArgs,
            body({"Pod": {"spec": {}}, "NodeNames": []}),
            "Pod: Pod has no 'metadata' object",
            id="pod-without-metadata",
        ),
        pytest.param(
            wire.ExtenderArgs,
            body({"Pod": {"metadata": {"name": "x"}}, "NodeNames": []}),
            "Pod has no 'metadata.namespace'",
            id="pod-without-namespace",
        ),
        pytest.param(
            wire.ExtenderArgs,
            body({"Pod": kube.pod(), "Nodes": {"items": [{"metadata": {}}]}}),
            "Nodes.items[0]: Node has no 'metadata.name'",
            id="node-without-name",
        ),
        pytest.param(
            wire.ExtenderBindingArgs,
            b'{"PodName":"train","PodNamespace":"team-a","PodUID":"u1"}',
            "ExtenderBindingArgs: Node: Field required",
            id="bind-without-node",
        ),
        pytest.param(
            wire.ExtenderPreemptionArgs,
            body({"Pod": kube.pod(), "NodeNameToMetaVictims": {"n1": {"Pods": [{"Name": "x"}]}}}),
            "NodeNameToMetaVictims.n1.Pods[0].UID: Field required",
            id="meta-pod-without-uid",
        ),
    ],
)
def test_malformed_bodies_name_the_field(
    model: type[wire.ExtenderArgs], payload: bytes, message: str
) -> None:
    with pytest.raises(wire.WireFormatError, match=re.escape(message)):
        wire.decode(model, payload)


# -- the fast road for names lists (ArgsCodec) ----------------------------------------------------

ARGS_BODIES = [
    pytest.param(body({"Pod": kube.pod(), "Nodes": None, "NodeNames": ["n1", "n2"]}), id="names"),
    pytest.param(b'{"Pod":' + body(kube.pod()) + b',"NodeNames":["n1"]}', id="go-compact"),
    pytest.param(
        body({"Pod": kube.pod(), "Nodes": {"metadata": {}, "items": [kube.node("n1")]}}),
        id="full-nodes",
    ),
    pytest.param(body({"Pod": kube.pod(), "NodeNames": None}), id="names-null"),
    pytest.param(body({"Pod": kube.pod()}), id="names-absent"),
    pytest.param(body({"Pod": kube.pod(), "NodeNames": ["n1"], "Future": [1]}), id="unknown-key"),
    pytest.param(body({"pod": kube.pod(), "NodeNames": ["n1"]}), id="field-name-not-alias"),
    pytest.param(b"", id="empty"),
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"[1, 2]", id="a-list"),
    pytest.param(b'{"NodeNames": []}', id="no-pod"),
    pytest.param(b'{"Pod": null, "NodeNames": []}', id="null-pod"),
    pytest.param(body({"Pod": kube.pod(), "NodeNames": "n1"}), id="names-not-list"),
    pytest.param(body({"Pod": kube.pod(), "NodeNames": ["n1", 2]}), id="a-name-not-text"),
    pytest.param(body({"Pod": {"spec": {}}, "NodeNames": []}), id="pod-without-metadata"),
    pytest.param(
        body({"Pod": {"metadata": {"name": "x"}}, "NodeNames": []}), id="pod-without-namespace"
    ),
    pytest.param(
        body({"Pod": kube.pod(), "Nodes": {"items": [{"metadata": {}}]}}), id="node-without-name"
    ),
]


def outcome(decode: Any, payload: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode(payload).model_dump()
    except wire.WireFormatError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("payload", ARGS_BODIES)
def test_the_codec_decodes_as_the_models_do_and_refuses_with_the_same_message(
    payload: bytes,
) -> None:
    """msgspec takes the usual bodies; anything else gets pydantic's answer, errors included."""
    expected = outcome(lambda raw: wire.decode(wire.ExtenderArgs, raw), payload)
    assert outcome(wire.ArgsCodec().decode, payload) == expected


def test_prioritize_names_equal_to_the_last_filter_answer_are_that_very_list() -> None:
    codec = wire.ArgsCodec()
    answer = codec.encode_filter_result(
        wire.ExtenderFilterResult(
            node_names=["n1", "n3"], failed_nodes={"n2": "3 free GPUs, 4 requested"}
        )
    )
    assert json.loads(answer) == {
        "Nodes": None,
        "NodeNames": ["n1", "n3"],
        "FailedNodes": {"n2": "3 free GPUs, 4 requested"},
        "FailedAndUnresolvableNodes": None,
        "Error": "",
    }
    passed = json.loads(answer)["NodeNames"]
    go_body = b'{"Pod":' + body(kube.pod()) + b',"Nodes":null,"NodeNames":["n1","n3"]}'
    args = codec.decode(go_body)
    assert args.node_names == passed
    assert args.node_names is codec.decode(go_body).node_names  # not decoded again
    other = codec.decode(go_body.replace(b'"n3"', b'"n4"'))
    assert other.node_names == ["n1", "n4"]


def test_a_filter_passing_every_candidate_writes_their_json_back_as_it_came() -> None:
    """The passed list *is* the decoded one: its JSON is not written again (only the same
    names can come out, whatever the spelling of the request)."""
    codec = wire.ArgsCodec()
    names = b'[ "n1","n\\u0032" ]'
    args = codec.decode(
        b'{"Pod":' + body(kube.pod()) + b',"Nodes":null,"NodeNames":' + names + b"}"
    )
    answer = codec.encode_filter_result(
        wire.ExtenderFilterResult.model_construct(
            nodes=None,
            node_names=args.node_names,
            failed_nodes={},
            failed_and_unresolvable_nodes={},
            error="",
        )
    )
    assert b'"NodeNames":' + names + b"," in answer
    assert json.loads(answer)["NodeNames"] == ["n1", "n2"]


def test_a_filter_passing_some_candidates_writes_those() -> None:
    codec = wire.ArgsCodec()
    args = codec.decode(b'{"Pod":' + body(kube.pod()) + b',"NodeNames":["n1","n2"]}')
    assert args.node_names is not None
    answer = codec.encode_filter_result(
        wire.ExtenderFilterResult(node_names=args.node_names[:1], failed_nodes={"n2": "full"})
    )
    assert json.loads(answer)["NodeNames"] == ["n1"]


def test_candidates_sent_again_are_the_list_decoded_before_whatever_came_between() -> None:
    """kube-scheduler sends filter the same candidates pod after pod; a prioritize (other names)
    in between does not make the codec decode them again."""
    codec = wire.ArgsCodec()
    every = b',"Nodes":null,"NodeNames":["n1","n2","n3"]}'
    first = codec.decode(b'{"Pod":' + body(kube.pod("a")) + every).node_names
    codec.decode(b'{"Pod":' + body(kube.pod("a")) + b',"NodeNames":["n1"]}')
    again = codec.decode(b'{"Pod":' + body(kube.pod("b")) + every).node_names
    assert again == ["n1", "n2", "n3"]
    assert again is first
    other = codec.decode(b'{"Pod":' + body(kube.pod("c")) + every.replace(b"n3", b"n4"))
    assert other.node_names == ["n1", "n2", "n4"]


def test_one_score_for_every_host_is_written_for_each() -> None:
    scores = wire.Scores.grouped({7: ["n1", "n2"]})
    assert list(scores.keys) == [7, 7]
    assert scores.keys[-1] == 7
    assert list(scores.keys[:1]) == [7]
    assert json.loads(wire.encode_scores(scores)) == [
        {"Host": "n1", "Score": 7},
        {"Host": "n2", "Score": 7},
    ]
    with pytest.raises(IndexError):
        scores.keys[2]
