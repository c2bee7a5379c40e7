"""The Argo stand-in's evaluators against Argo's documented behaviour (fast, no processes)."""

from __future__ import annotations

import re

import pytest

from .argo import govaluate
from .argo.controller import Node, _assess_dag, _seconds, _should_retry
from .argo.depends import Depends
from .argo.expr import ExprError, evaluate, expand, jsonpath, to_text
from .argo.pods import Mount, _rewrite
from .argo.templates import join_workflow_spec
from .argo.variables import UnresolvedError, substitute

STEPS = '[{"kind":"traffic","weight":20},{"kind":"approve","message":"ok?","timeout":""}]'
SCOPE = {
    "inputs.parameters.steps": STEPS,
    "inputs.parameters.step": "1",
    "inputs.parameters.plan-inline": "",
    "inputs.parameters.plan": "canaryflow.yaml",
    "workflow.status": "Failed",
    "tasks.image-push.outputs.parameters.image": "r/x@sha256:ab",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{inputs.parameters.step}}", "1"),
        ("{{ workflow.status }}", "Failed"),
        ("{{tasks.image-push.outputs.parameters.image}}", "r/x@sha256:ab"),
        ("{{=asInt(inputs.parameters['step']) + 1}}", "2"),
        (
            "{{=jsonpath(inputs.parameters['steps'], "
            "'$[' + inputs.parameters['step'] + '].kind')}}",
            "approve",
        ),
        ("{{=jsonpath(inputs.parameters['steps'], '$[0].weight')}}", "20"),
        (
            "{{=inputs.parameters['plan-inline'] != '' ? '/inputs/p.yaml' "
            ": inputs.parameters['plan']}}",
            "canaryflow.yaml",
        ),
        ("{{=sprig.trim('  a ')}}", "a"),
        ("{{=1 / 2}}", "0.5"),
        ("{{=4 / 2}}", "2"),
    ],
)
def test_tags_are_replaced_as_argo_does(text, expected):
    assert substitute(text, SCOPE) == expected


def test_an_unknown_simple_tag_fails_unless_unresolved_tags_are_allowed():
    with pytest.raises(UnresolvedError):
        substitute("{{tasks.nope.outputs.result}}", SCOPE)
    assert substitute("a {{tasks.nope.outputs.result}}", SCOPE, allow_unresolved=True) == (
        "a {{tasks.nope.outputs.result}}"
    )


def test_a_failing_expression_is_an_error_or_left_as_it_was():
    text = "{{=jsonpath(inputs.parameters['steps'], '$[0].message')}}"
    with pytest.raises(UnresolvedError):
        substitute(text, SCOPE)
    assert substitute(text, SCOPE, allow_unresolved=True) == text


def test_a_tag_never_closed_is_an_error_even_where_unresolved_is_allowed():
    """fasttemplate v1.2.2 refuses the whole template (util/template NewTemplate)."""
    with pytest.raises(UnresolvedError, match="Cannot find end tag"):
        substitute("{{workflow.status}} and {{", SCOPE, allow_unresolved=True)


def test_a_literal_brace_pair_before_a_tag_keeps_the_tag_resolved():
    """util/template simple_template.go: the name after the tag's last ``{{``."""
    assert substitute("{{x{{workflow.status}}", SCOPE) == "{{xFailed"


def test_an_expression_that_is_not_finite_is_unresolved():
    """expr-lang divides in float64 (1/0 is +Inf), which json.Marshal refuses."""
    assert substitute("{{=1/0}}", SCOPE, allow_unresolved=True) == "{{=1/0}}"
    with pytest.raises(UnresolvedError):
        substitute("{{=1/0}}", SCOPE)


def test_expressions_follow_expr_lang():
    env = expand({"a.b": "x", "n": 3})
    assert evaluate("a.b == 'x' && n > 2", env) is True
    assert evaluate("a['b'] + 'y'", env) == "xy"
    assert evaluate("n in [1, 2, 3] ? 'yes' : 'no'", env) == "yes"
    assert evaluate("nil ?? 'fallback'", env) == "fallback"
    assert to_text(2.0) == "2" and to_text(True) == "true" and to_text([1]) == "[1]"
    assert jsonpath('{"s":[{"w":5},{"w":7}]}', "$.s[1:]") == [{"w": 7}]
    with pytest.raises(ExprError):
        evaluate("1 + 'a'", env)
    with pytest.raises(ExprError):
        evaluate("missing.field", env)


# expr-lang v1.17.7 (argo-workflows v3.6.19's), run offline on 2026-12-07 on these inputs:
# `in` takes a list or a map, never a string; the string operators convert nothing; `%` is
# Go's integer remainder.
@pytest.mark.parametrize(
    "text",
    [
        "inputs.parameters.step in inputs.parameters.steps",
        "asInt(inputs.parameters.step) startsWith '1'",
        "7.5 % 2",
    ],
)
def test_expressions_refuse_what_expr_lang_refuses(text):
    with pytest.raises(ExprError):
        evaluate(text, expand(SCOPE))


def test_expr_remainder_takes_the_dividends_sign_as_go_does():
    assert evaluate("-7 % 2", {}) == -1


# Also expr-lang v1.17.7's answers (parser/operator/operator.go precedences, parseComparison,
# Go's encoding/json), run offline on 2026-12-07.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 < 2 < 3", True),  # a chain: 1 < 2 && 2 < 3
        ("3 > 2 > 2", False),
        ("2 == nil ?? 2", True),  # ?? binds tighter than ==
        ("toJSON({'a': 1})", '{\n  "a": 1\n}'),  # the builtin indents
        ("toJson('<&>')", '"\\u003c\\u0026\\u003e"'),  # json.Marshal escapes HTML
    ],
)
def test_expr_precedence_and_json_follow_expr_lang(text, expected):
    assert evaluate(text, {}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "nil ?? 1 == 1",  # "coalesce expressions (??) cannot be mixed"
        "jsonpath(inputs.parameters.steps, '$[0].weight') % 3",  # a JSON number is a float64
    ],
)
def test_expr_refuses_a_mixed_coalesce_and_a_float_remainder(text):
    with pytest.raises(ExprError):
        evaluate(text, expand(SCOPE))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("Failed != Succeeded", True),
        ("Succeeded != Succeeded", False),
        ("traffic == approve", False),
        ("0 < 1", True),
        ("1 < 1", False),
        ("pass == inconclusive || true", True),
        ("'a b' == 'a b'", True),
        ("x =~ '^x$'", True),
    ],
)
def test_when_reads_bare_words_as_strings(when, expected):
    assert govaluate.should_execute(when) is expected


def test_when_must_be_boolean():
    with pytest.raises(govaluate.WhenError):
        govaluate.should_execute("1 + 1")


# Each answer below is what argo-workflows v3.6.19's shouldExecute (steps.go) returned on
# govaluate 7625b7f8c03d, run offline on 2026-12-07 (README "Checked against upstream").
@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("true || false && false", True),  # && binds tighter than || (stagePlanner.go)
        ("Succeeded == Failed && approve > 1", False),  # && short-circuits: no type error
        ("Succeeded == Succeeded || approve > 1", True),  # || too
        ("0 == false", False),  # == is reflect.DeepEqual: a number is never a boolean
    ],
)
def test_when_follows_govaluates_precedence_short_circuit_and_equality(when, expected):
    assert govaluate.should_execute(when) is expected


@pytest.mark.parametrize(
    ("when", "says"),
    [
        ("approve && true", "cannot be used with the logical operator '&&', it is not a bool"),
        ("x.y == x.y", "Unable to access unexported field 'y' in token 'x.y'"),
        ("'1.2.3' == v1.2.3", "No parameter 'v1' found."),
        ("!!true", "Invalid token: '!!'"),
        ("!'x'", "Cannot transition token types from PREFIX [!] to STRING [x]"),
        ("set-weight == traffic", "Value 'set' cannot be used with the modifier '-'"),
        ("'x' =~ 'x' + 1", "Value 'x' cannot be used with the modifier '+'"),  # 'x' is a regexp
    ],
)
def test_when_refuses_what_govaluate_refuses(when, says):
    """A bare word is read as a string only when govaluate lexed it as a VARIABLE: a dotted word
    is an accessor, ``-`` is minus, and operands are type-checked."""
    with pytest.raises(govaluate.WhenError, match=re.escape(says)):
        govaluate.should_execute(when)


def test_depends_follows_enhanced_depends_logic():
    phases = {"a": "Succeeded", "b": "Error", "c": "Omitted", "d": "Skipped"}
    assert Depends("a && b.Errored").evaluate(phases)
    assert Depends("d").evaluate(phases)  # a bare name: Succeeded, Skipped or Daemoned
    assert not Depends("c").evaluate(phases)
    assert Depends("!(a.Failed || c.Succeeded)").evaluate(phases)
    with pytest.raises(ValueError):
        Depends("a.Finished")


def test_the_dag_phase_is_its_targets_branch_phase():
    depends = {
        "build": None,
        "steps": Depends("build.Succeeded"),
        "promote": Depends("steps.Succeeded"),
        "rollback": Depends("steps.Failed"),
    }
    tasks = {name: {"name": name} for name in depends}
    failed = {
        "build": "Succeeded",
        "steps": "Failed",
        "promote": "Omitted",
        "rollback": "Succeeded",
    }
    assert _assess_dag(["promote", "rollback"], depends, failed, tasks) == "Failed"
    passed = {
        "build": "Succeeded",
        "steps": "Succeeded",
        "promote": "Succeeded",
        "rollback": "Omitted",
    }
    assert _assess_dag(["promote", "rollback"], depends, passed, tasks) == "Succeeded"


def test_retries_follow_policy_and_expression():
    failed = Node("n", "n", "n", "Pod", phase="Failed", exit_code=1)
    bad_input = Node("n", "n", "n", "Pod", phase="Failed", exit_code=2)
    errored = Node("n", "n", "n", "Pod", phase="Error")
    expression = "lastRetry.exitCode != '2'"
    assert _should_retry("Always", expression, failed)
    assert not _should_retry("Always", expression, bad_input)
    assert _should_retry("OnError", None, errored) and not _should_retry("OnError", None, failed)
    assert not _should_retry("OnFailure", None, errored)
    assert _seconds("1m30s") == 90 and _seconds("5") == 5 and _seconds("") == 0


def test_a_workflow_template_ref_joins_the_specs_and_merges_arguments_by_name():
    template = {
        "spec": {
            "entrypoint": "release",
            "arguments": {"parameters": [{"name": "repo"}, {"name": "plan", "value": "a.yaml"}]},
        }
    }
    workflow = {
        "spec": {
            "workflowTemplateRef": {"name": "t"},
            "arguments": {"parameters": [{"name": "repo", "value": "git://r"}]},
        }
    }
    joined = join_workflow_spec(workflow, template)
    assert joined["entrypoint"] == "release" and "workflowTemplateRef" not in joined
    assert joined["arguments"]["parameters"] == [
        {"name": "repo", "value": "git://r"},
        {"name": "plan", "value": "a.yaml"},
    ]


def test_paths_under_a_mount_are_local_and_every_other_argument_is_unchanged(tmp_path):
    mounts = [Mount("/workspace", tmp_path / "ws"), Mount("/tmp", tmp_path / "tmp")]
    assert _rewrite("/workspace/plan.yaml", mounts) == f"{tmp_path}/ws/plan.yaml"
    assert _rewrite("--out=/tmp/outputs/x", mounts) == f"--out={tmp_path}/tmp/outputs/x"
    assert _rewrite("/workspaces", mounts) == "/workspaces"
    assert _rewrite("canaryflow", mounts) == "canaryflow"
