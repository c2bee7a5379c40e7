"""The Argo Events stand-in admits an EventSource exactly as the v1.9 controller does.

Expectations from upstream: ``github/validate_test.go`` and ``gitlab/validate_test.go`` (the
empty source refused, GitHub's with "either repositories or organizations is required"; the
sources of ``examples/event-sources/{github,gitlab}.yaml`` accepted), and the messages of
``validate.go`` at v1.9.0 to v1.9.11 (see ``cluster.eventsource``).
"""

from __future__ import annotations

import copy

import pytest

from .eventsource import InvalidEventSource, route_for, routes, validate_github, validate_gitlab

WEBHOOK = {"endpoint": "/push", "port": "12000", "method": "POST"}
# The sources of upstream's examples/event-sources/github.yaml: with an API token, and the
# deprecated owner/repository form without credentials.
GITHUB_WITH_TOKEN = {
    "repositories": [{"owner": "argoproj", "names": ["argo-events", "argo-workflows"]}],
    "webhook": {**WEBHOOK, "url": "http://url-that-is-reachable-from-GitHub"},
    "events": ["*"],
    "apiToken": {"name": "github-access", "key": "token"},
    "insecure": True,
    "active": True,
    "contentType": "json",
}
GITHUB_DEPRECATED_FORM = {
    "owner": "argoproj",
    "repository": "argo",
    "webhook": {**WEBHOOK, "port": "13000"},
    "events": ["*"],
    "webhookSecret": {"name": "github-access", "key": "secret"},
    "contentType": "json",
}
# examples/event-sources/gitlab.yaml: a project source and a group source.
GITLAB_PROJECTS = {
    "projects": ["whynowy/test", "3"],
    "webhook": {**WEBHOOK, "url": "http://url-that-is-reachable-from-GitLab"},
    "events": ["PushEvents", "TagPushEvents"],
    "accessToken": {"key": "token", "name": "gitlab-access"},
    "secretToken": {"key": "token", "name": "gitlab-secret"},
    "gitlabBaseURL": "https://gitlab.com",
}
GITLAB_GROUPS = {**{k: v for k, v in GITLAB_PROJECTS.items() if k != "projects"}, "groups": ["g"]}


def event_source(**spec) -> dict:
    return {"metadata": {"name": "git"}, "spec": {"eventBusName": "default", **spec}}


def refusal(check, *args) -> str:
    with pytest.raises(InvalidEventSource) as raised:
        check(*args)
    return str(raised.value)


def test_upstreams_examples_are_accepted():
    """Each check raises InvalidEventSource on a refusal; upstream's examples raise nothing."""
    accepted = [
        validate_github(GITHUB_WITH_TOKEN),
        validate_github(GITHUB_DEPRECATED_FORM),
        validate_gitlab(GITLAB_PROJECTS),
        validate_gitlab(GITLAB_GROUPS),
    ]
    assert accepted == [None] * 4


def test_an_empty_github_source_needs_repositories_or_organizations():
    assert refusal(validate_github, {}) == "either repositories or organizations is required"
    empty = {**GITHUB_DEPRECATED_FORM, "repositories": []}
    del empty["owner"], empty["repository"]
    assert refusal(validate_github, empty) == "either repositories or organizations is required"


def test_github_organizations_count_when_present_even_empty_as_go_decodes_them():
    """Go decodes ``organizations: []`` to a non-nil slice: it passes the first check."""
    source = {"organizations": [], "webhook": WEBHOOK}
    validate_github(source)
    both = {**GITHUB_WITH_TOKEN, "organizations": ["argoproj"]}
    assert refusal(validate_github, both) == "only one of repositories and organizations is allowed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"events": []}, "events must be defined to create a github webhook"),
        ({"contentType": "xml"}, 'content type must be "json" or "form"'),
        (
            {"githubUploadURL": "https://up"},
            "githubBaseURL is required when githubUploadURL is set",
        ),
        ({"githubBaseURL": "https://ghe"}, "githubUploadURL is required when githubBaseURL is set"),
        ({"webhook": {**WEBHOOK, "endpoint": ""}}, "endpoint can't be empty"),
        ({"webhook": {**WEBHOOK, "port": ""}}, "port can't be empty"),
    ],
)
def test_github_rules(change, message):
    assert refusal(validate_github, {**GITHUB_WITH_TOKEN, **change}) == message


def test_a_port_go_cannot_parse_is_refused():
    source = {**GITHUB_WITH_TOKEN, "webhook": {**WEBHOOK, "port": "12k"}}
    assert refusal(validate_github, source).startswith("failed to parse server port 12k.")


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        ("12k", "invalid syntax"),
        (" 12000", "invalid syntax"),
        ("0x10", "invalid syntax"),
        ("99999999999999999999", "value out of range"),
    ],
)
def test_a_refused_port_gets_upstreams_strconv_message(port, reason):
    """Messages as upstream's ValidateWebhookContext (v1.9.11, run offline on 2026-12-08) gave
    them: Go's strconv.Atoi tells a number outside int64 from bad syntax."""
    source = {**GITHUB_WITH_TOKEN, "webhook": {**WEBHOOK, "port": port}}
    assert refusal(validate_github, source) == (
        f'failed to parse server port {port}. err: strconv.Atoi: parsing "{port}": {reason}'
    )


def test_gitlab_needs_an_access_token_in_every_v1_9():
    without = {k: v for k, v in GITLAB_PROJECTS.items() if k != "accessToken"}
    for version in ((1, 9, 0), (1, 9, 5), (1, 9, 6), (1, 9, 11)):
        assert refusal(validate_gitlab, without, version) == "access token can't be nil"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"events": None}, "events can't be empty"),
        ({"gitlabBaseURL": ""}, "gitlab base url can't be empty"),
    ],
)
def test_gitlab_rules(change, message):
    assert refusal(validate_gitlab, {**GITLAB_PROJECTS, **change}) == message


def test_gitlab_without_projects_or_groups_is_refused_before_v1_9_6_only():
    bare = {k: v for k, v in GITLAB_PROJECTS.items() if k != "projects"}
    message = "projects and groups cannot be empty at the same time"
    assert refusal(validate_gitlab, bare, (1, 9, 5)) == message
    validate_gitlab(bare, (1, 9, 6))
    validate_gitlab({**bare, "projectID": "3"}, (1, 9, 5))  # the deprecated form counts


def test_an_event_name_used_twice_is_refused_even_across_types():
    source = event_source(github={"push": GITHUB_WITH_TOKEN}, gitlab={"push": GITLAB_PROJECTS})
    assert refusal(routes, source) == 'more than one "push" found in the spec'


def test_a_valid_event_source_serves_one_webhook_per_named_source():
    source = event_source(
        github={"github": GITHUB_WITH_TOKEN}, gitlab={"gitlab": copy.deepcopy(GITLAB_PROJECTS)}
    )
    served = {(r.kind, r.event_name, r.port, r.endpoint) for r in routes(source)}
    assert served == {("github", "github", 12000, "/push"), ("gitlab", "gitlab", 12000, "/push")}
    assert route_for(source, "gitlab").event_source == "git"


def test_an_invalid_source_serves_no_webhook_not_even_the_valid_one():
    """The reconciler stops at the first invalid source: no Deployment for the EventSource."""
    broken = {k: v for k, v in GITLAB_PROJECTS.items() if k != "accessToken"}
    source = event_source(github={"github": GITHUB_WITH_TOKEN}, gitlab={"gitlab": broken})
    with pytest.raises(InvalidEventSource):
        route_for(source, "github")
