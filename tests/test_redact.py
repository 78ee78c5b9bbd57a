"""Secret redaction: what leaves an audit event before it is stored, and what stays."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k3watch.redact import LAST_APPLIED, REDACTED, RedactionConfig, Redactor
from k3watch.sample import generate_events
from k3watch.telemetry import Counters

CORPUS = Path(__file__).parent / "corpus"

# Credentials as they really look (all made up): a service-account JWT, a K3s server token.
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjNhWkJ4In0."
    "eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjLmNsdXN0ZXIubG9jYWwiXSwic3ViIjoic3lzdGVt"
    "OnNlcnZpY2VhY2NvdW50OmJ1aWxkOmJ1aWxkLWJvdCJ9."
    "Xk2m1Qf9cV3pLr7uT0aZyB4nD8sE6wG5hJ1kM2oN3qP4rS5tU6vW7xY8zA9bC0dE1fG2hI3jK4lM5nO6pQ7rS8tU"
)
CA_HASH = "5e2b5c9a1d6e4f7a8b3c0d2e1f4a6b8c9d0e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"
JOIN_TOKEN = f"K10{CA_HASH}::server:9f8e7d6c5b4a39281706f5e4d3c2b1a0"
NODE_TOKEN = f"K10{CA_HASH}::node:b1a0c3d2e5f4a7b6c9d8"
BOOTSTRAP_TOKEN = f"K10{CA_HASH}::abcdef.0123456789abcdef"
BASIC = base64.b64encode(b"registry-bot:Pa55w0rd!").decode()


def audit(
    verb: str,
    resource: str,
    *,
    namespace: str | None = "shop",
    name: str | None = None,
    subresource: str | None = None,
    group: str = "",
    level: str = "RequestResponse",
    request: Any = None,
    response: Any = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ``audit.k8s.io/v1`` event as kube-apiserver writes it (ResponseComplete stage)."""
    path = f"/apis/{group}/v1" if group else "/api/v1"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += (
        f"/{resource}" + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")
    )
    ref: dict[str, Any] = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    if group:
        ref["apiGroup"] = group
    ref["apiVersion"] = "v1"
    if subresource:
        ref["subresource"] = subresource
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": "7c0a3e9e-2f57-4f0c-9d4b-5c3b2f1e8a61",
        "stage": "ResponseComplete",
        "requestURI": path,
        "verb": verb,
        "user": {
            "username": "alice@example.com",
            "groups": ["devs", "system:authenticated"],
        },
        "sourceIPs": ["10.42.0.15"],
        "userAgent": "kubectl/v1.31.2+k3s1 (linux/amd64) kubernetes/8f7e6d5",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": 201 if verb == "create" else 200},
    }
    if request is not None:
        event["requestObject"] = request
    if response is not None:
        event["responseObject"] = response
    event["requestReceivedTimestamp"] = "2026-03-03T09:12:34.567890Z"
    event["stageTimestamp"] = "2026-03-03T09:12:34.581234Z"
    event["annotations"] = {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "shop-admins/shop" of '
        'ClusterRole "admin" to Group "devs"',
        **(annotations or {}),
    }
    return event


def secret(
    name: str = "postgres-credentials",
    data: dict[str, str] | None = None,
    string_data: dict[str, str] | None = None,
    *,
    last_applied: bool = False,
) -> dict[str, Any]:
    """A v1 Secret as the API server returns it."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "shop",
        "uid": "0b4f8d2e-6a31-4c7d-9e15-2a8b7c6d5e4f",
        "resourceVersion": "184467",
        "creationTimestamp": "2026-03-03T09:12:34Z",
        "labels": {"app.kubernetes.io/name": "postgres"},
    }
    body: dict[str, Any] = {"kind": "Secret", "apiVersion": "v1", "metadata": metadata}
    if data is not None:
        body["data"] = data
    if string_data is not None:
        body["stringData"] = string_data
    body["type"] = "Opaque"
    if last_applied:
        applied = {
            "apiVersion": "v1",
            "data": data or {},
            "kind": "Secret",
            "metadata": {"annotations": {}, "name": name, "namespace": "shop"},
            "type": "Opaque",
        }
        metadata["annotations"] = {LAST_APPLIED: json.dumps(applied, separators=(",", ":")) + "\n"}
    return body


PASSWORD = base64.b64encode(b"correct horse battery staple").decode()
USERNAME = base64.b64encode(b"shop").decode()


def dumped(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def redacted(event: dict[str, Any], config: RedactionConfig | None = None) -> Counters:
    """Redact ``event`` in place; the counters it left."""
    counters = Counters("server")
    assert Redactor(config, counters).redact(event) is True
    return counters


# --- Secrets ---


def test_secret_create_loses_data_and_string_data_values_but_keeps_keys() -> None:
    body = secret(data={"username": USERNAME, "password": PASSWORD}, string_data={"port": "5432"})
    event = audit("create", "secrets", request=body, response=copy.deepcopy(body))
    counters = redacted(event)
    for name in ("requestObject", "responseObject"):
        assert event[name]["data"] == {"username": REDACTED, "password": REDACTED}
        assert event[name]["stringData"] == {"port": REDACTED}
        assert event[name]["type"] == "Opaque"
        assert event[name]["metadata"]["labels"] == {"app.kubernetes.io/name": "postgres"}
    assert counters.get("redacted", reason="secret_data") == 6
    assert PASSWORD not in dumped(event)


def test_secret_update_redacts_request_and_response() -> None:
    event = audit(
        "update",
        "secrets",
        name="postgres-credentials",
        request=secret(data={"password": PASSWORD}),
        response=secret(data={"password": PASSWORD}),
    )
    redacted(event)
    assert event["requestObject"]["data"] == {"password": REDACTED}
    assert event["responseObject"]["data"] == {"password": REDACTED}


def test_secret_merge_patch_body_is_redacted() -> None:
    patch = {"data": {"password": PASSWORD}, "metadata": {"labels": {"rotated": "2026-03-03"}}}
    event = audit("patch", "secrets", name="postgres-credentials", request=patch)
    redacted(event)
    assert event["requestObject"] == {
        "data": {"password": REDACTED},
        "metadata": {"labels": {"rotated": "2026-03-03"}},
    }


def test_strategic_merge_patch_directives_are_kept() -> None:
    patch = {"stringData": {"$patch": "replace", "token": "s3cr3t-value"}}
    event = audit("patch", "secrets", name="api-secrets", request=patch)
    redacted(event)
    assert event["requestObject"] == {"stringData": {"$patch": "replace", "token": REDACTED}}


def test_json_patch_values_under_data_are_redacted_others_kept() -> None:
    patch = [
        {"op": "replace", "path": "/data/password", "value": PASSWORD},
        {"op": "add", "path": "/stringData", "value": {"url": "postgres://shop:pw@db:5432/shop"}},
        {"op": "add", "path": "/metadata/labels/rotated", "value": "2026-03-03"},
        {"op": "remove", "path": "/data/old"},
        {"op": "test", "path": "/type", "value": "Opaque"},
    ]
    event = audit("patch", "secrets", name="postgres-credentials", request=patch)
    counters = redacted(event)
    assert event["requestObject"] == [
        {"op": "replace", "path": "/data/password", "value": REDACTED},
        {"op": "add", "path": "/stringData", "value": {"url": REDACTED}},
        {"op": "add", "path": "/metadata/labels/rotated", "value": "2026-03-03"},
        {"op": "remove", "path": "/data/old"},
        {"op": "test", "path": "/type", "value": "Opaque"},
    ]
    assert counters.get("redacted", reason="secret_data") == 2


def test_json_patch_values_are_redacted_for_the_whole_object_an_annotation_or_no_pointer() -> None:
    applied = json.dumps({"kind": "Secret", "data": {"password": PASSWORD}})
    patch = [
        {"op": "replace", "path": "", "value": secret(data={"password": PASSWORD})},
        {
            "op": "add",
            "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            "value": applied,
        },
        {"op": "add", "path": "no pointer", "value": PASSWORD},
    ]
    event = audit("patch", "secrets", name="postgres-credentials", request=patch)
    redacted(event)
    assert event["requestObject"][0]["value"]["data"] == {"password": REDACTED}
    assert json.loads(event["requestObject"][1]["value"])["data"] == {"password": REDACTED}
    assert event["requestObject"][2]["value"] == REDACTED
    assert PASSWORD not in dumped(event)


def test_a_secret_patch_body_kept_as_text_is_redacted_whole() -> None:
    yaml_apply = f"apiVersion: v1\nkind: Secret\ndata:\n  password: {PASSWORD}\n"
    event = audit("patch", "secrets", name="postgres-credentials", request=yaml_apply)
    redacted(event)
    assert event["requestObject"] == REDACTED


def test_every_item_of_a_secret_list_is_redacted() -> None:
    response = {
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "184470"},
        "items": [
            secret("postgres-credentials", {"password": PASSWORD}),
            secret("stripe-api-key", {"key": base64.b64encode(b"sk_live_51Hx").decode()}),
            secret("empty", {}),
        ],
    }
    event = audit("list", "secrets", response=response)
    counters = redacted(event)
    items = event["responseObject"]["items"]
    assert [item["data"] for item in items] == [{"password": REDACTED}, {"key": REDACTED}, {}]
    assert [item["metadata"]["name"] for item in items] == [
        "postgres-credentials",
        "stripe-api-key",
        "empty",
    ]
    assert counters.get("redacted", reason="secret_data") == 2


def test_secret_get_response_and_its_last_applied_annotation_are_redacted() -> None:
    event = audit(
        "get",
        "secrets",
        name="postgres-credentials",
        response=secret(data={"password": PASSWORD, "username": USERNAME}, last_applied=True),
    )
    redacted(event)
    body = event["responseObject"]
    assert body["data"] == {"password": REDACTED, "username": REDACTED}
    applied = body["metadata"]["annotations"][LAST_APPLIED]
    assert applied.endswith("\n")  # kubectl's form is kept
    assert json.loads(applied)["data"] == {"password": REDACTED, "username": REDACTED}
    assert PASSWORD not in dumped(event) and USERNAME not in dumped(event)


def test_an_unreadable_last_applied_annotation_is_redacted_whole() -> None:
    body = secret(data={"password": PASSWORD})
    body["metadata"]["annotations"] = {LAST_APPLIED: '{"data": {"password": "' + PASSWORD}
    event = audit("get", "secrets", name="postgres-credentials", response=body)
    redacted(event)
    assert event["responseObject"]["metadata"]["annotations"][LAST_APPLIED] == REDACTED


def test_objects_in_a_table_response_are_redacted() -> None:
    response = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": [{"name": "Name", "type": "string"}],
        "rows": [
            {"cells": ["postgres-credentials"], "object": secret(data={"password": PASSWORD})}
        ],
    }
    event = audit("list", "secrets", response=response)
    redacted(event)
    assert event["responseObject"]["rows"][0]["object"]["data"] == {"password": REDACTED}
    assert event["responseObject"]["rows"][0]["cells"] == ["postgres-credentials"]


def test_a_secret_body_is_recognised_by_its_kind_without_object_ref() -> None:
    event = audit("create", "secrets", request=secret(data={"password": PASSWORD}))
    del event["objectRef"]
    redacted(event)
    assert event["requestObject"]["data"] == {"password": REDACTED}


def test_a_mutating_webhook_patch_on_a_secret_is_redacted_in_the_annotation() -> None:
    recorded = {
        "configuration": "vault-injector",
        "webhook": "inject.vault.example.com",
        "patch": [{"op": "add", "path": "/data/token", "value": PASSWORD}],
        "patchType": "JSONPatch",
    }
    key = "patch.webhook.admission.k8s.io/round_0_index_0"
    event = audit(
        "create",
        "secrets",
        request=secret(data={}),
        annotations={key: json.dumps(recorded)},
    )
    redacted(event)
    assert json.loads(event["annotations"][key])["patch"][0]["value"] == REDACTED
    assert PASSWORD not in dumped(event)


def test_bootstrap_token_secrets_are_secrets() -> None:
    body = secret(
        "bootstrap-token-abcdef",
        data={
            "token-id": base64.b64encode(b"abcdef").decode(),
            "token-secret": base64.b64encode(b"0123456789abcdef").decode(),
        },
    )
    body["type"] = "bootstrap.kubernetes.io/token"
    event = audit("create", "secrets", namespace="kube-system", request=body)
    redacted(event)
    assert event["requestObject"]["data"] == {"token-id": REDACTED, "token-secret": REDACTED}


# --- tokens ---


def test_token_request_response_loses_its_token() -> None:
    spec = {
        "audiences": ["https://kubernetes.default.svc.cluster.local", "k3s"],
        "expirationSeconds": 3607,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "api-7d9c", "uid": "u-1"},
    }
    request = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"token": "", "expirationTimestamp": None},
    }
    response = copy.deepcopy(request)
    response["status"] = {"token": JWT, "expirationTimestamp": "2026-03-03T10:12:41Z"}
    event = audit(
        "create",
        "serviceaccounts",
        name="api",
        subresource="token",
        request=request,
        response=response,
    )
    counters = redacted(event)
    assert event["responseObject"]["status"]["token"] == REDACTED
    assert event["responseObject"]["status"]["expirationTimestamp"] == "2026-03-03T10:12:41Z"
    assert event["requestObject"]["status"]["token"] == ""  # nothing to hide
    assert counters.by_reason("redacted") == {"token": 1}


def test_token_review_loses_the_reviewed_token_in_request_and_response() -> None:
    request = {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": "opaque-token-4f1c9a", "audiences": ["k3s"]},
        "status": {"user": {}},
    }
    response = copy.deepcopy(request)
    response["status"] = {"authenticated": True, "user": {"username": "system:node:agent-1"}}
    event = audit(
        "create", "tokenreviews", namespace=None, group="authentication.k8s.io", request=request
    )
    event["responseObject"] = response
    counters = redacted(event)
    assert event["requestObject"]["spec"] == {"token": REDACTED, "audiences": ["k3s"]}
    assert event["responseObject"]["spec"]["token"] == REDACTED
    assert event["responseObject"]["status"]["user"] == {"username": "system:node:agent-1"}
    assert counters.get("redacted", reason="token") == 2


# --- credentials in text ---


def _configmap(data: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "build-settings", "namespace": "ci"},
        "data": data,
    }


def test_a_bearer_token_in_a_string_is_redacted_and_the_scheme_kept() -> None:
    script = f"curl -H 'Authorization: Bearer s3cr3t-{'x' * 20}' https://registry.example.com/v2/"
    event = audit("create", "configmaps", level="Request", request=_configmap({"run.sh": script}))
    counters = redacted(event)
    assert event["requestObject"]["data"]["run.sh"] == (
        f"curl -H 'Authorization: Bearer {REDACTED}' https://registry.example.com/v2/"
    )
    assert counters.by_reason("redacted") == {"bearer": 1}


def test_a_bearer_token_in_the_request_uri_is_redacted() -> None:
    event = audit("get", "pods", name="web-1", subresource="proxy")
    event["requestURI"] += "/metrics?auth=Bearer%20t0ken-abcdef0123"
    counters = redacted(event)
    assert event["requestURI"].endswith(f"/metrics?auth=Bearer%20{REDACTED}")
    assert counters.get("redacted", reason="bearer") == 1


def test_prose_about_bearer_and_basic_authentication_is_left_alone() -> None:
    text = "Uses a bearer token; Basic auth is off. See bearer authentication docs."
    event = audit("create", "configmaps", level="Request", request=_configmap({"README": text}))
    assert Redactor().redact(event) is False
    assert event["requestObject"]["data"]["README"] == text


def test_basic_credentials_in_a_string_are_redacted() -> None:
    event = audit(
        "create",
        "configmaps",
        level="Request",
        request=_configmap({"proxy.conf": f"proxy_set_header Authorization 'Basic {BASIC}';"}),
    )
    counters = redacted(event)
    assert event["requestObject"]["data"]["proxy.conf"] == (
        f"proxy_set_header Authorization 'Basic {REDACTED}';"
    )
    assert counters.by_reason("redacted") == {"basic": 1}


@pytest.mark.parametrize(
    ("token", "kept"),
    [
        (JOIN_TOKEN, f"K10{CA_HASH}::server:"),
        (NODE_TOKEN, f"K10{CA_HASH}::node:"),
        (BOOTSTRAP_TOKEN, f"K10{CA_HASH}::"),
    ],
)
def test_a_k3s_join_token_loses_its_password(token: str, kept: str) -> None:
    node = {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": "agent-2",
            "annotations": {"k3s.io/node-args": json.dumps(["agent", "--token", token])},
        },
    }
    event = audit("create", "nodes", namespace=None, level="Request", request=node)
    counters = redacted(event)
    args = json.loads(event["requestObject"]["metadata"]["annotations"]["k3s.io/node-args"])
    assert args == ["agent", "--token", kept + REDACTED]
    assert counters.by_reason("redacted") == {"join_token": 1}


def test_a_jwt_in_a_string_is_redacted_whole() -> None:
    kubeconfig = f"users:\n- name: build-bot\n  user:\n    token: {JWT}\n"
    event = audit(
        "create", "configmaps", level="Request", request=_configmap({"config": kubeconfig})
    )
    counters = redacted(event)
    assert event["requestObject"]["data"]["config"] == (
        f"users:\n- name: build-bot\n  user:\n    token: {REDACTED}\n"
    )
    assert counters.by_reason("redacted") == {"jwt": 1}


def test_authorization_header_values_are_redacted_as_map_keys_and_name_value_pairs() -> None:
    deployment = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": "registry.example.com/shop/api:1.4.2",
                            "readinessProbe": {
                                "httpGet": {
                                    "path": "/ready",
                                    "port": 8080,
                                    "httpHeaders": [
                                        {"name": "Authorization", "value": "Token abc"},
                                        {"name": "X-Probe", "value": "1"},
                                    ],
                                }
                            },
                        }
                    ]
                }
            }
        },
    }
    middleware = {
        "kind": "Middleware",
        "apiVersion": "traefik.io/v1alpha1",
        "metadata": {"name": "upstream-auth"},
        "spec": {"headers": {"customRequestHeaders": {"PROXY-AUTHORIZATION": "Digest x"}}},
    }
    first = audit("create", "deployments", group="apps", level="Request", request=deployment)
    second = audit("create", "middlewares", group="traefik.io", level="Request", request=middleware)
    counters = redacted(first)
    redacted(second)
    headers = first["requestObject"]["spec"]["template"]["spec"]["containers"][0]
    assert headers["readinessProbe"]["httpGet"]["httpHeaders"] == [
        {"name": "Authorization", "value": REDACTED},
        {"name": "X-Probe", "value": "1"},
    ]
    assert second["requestObject"]["spec"]["headers"]["customRequestHeaders"] == {
        "PROXY-AUTHORIZATION": REDACTED
    }
    assert counters.by_reason("redacted") == {"authorization_header": 1}


# --- configuration ---


def _pod(env: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "api-7d9c", "namespace": "shop", "annotations": annotations or {}},
        "spec": {
            "containers": [
                {"name": "api", "image": "registry.example.com/shop/api:1.4.2", "env": env},
                {"name": "proxy", "image": "envoyproxy/envoy:v1.31", "env": copy.deepcopy(env)},
            ]
        },
    }


def test_config_keys_redact_values_of_that_key_anywhere_case_insensitively() -> None:
    pod = _pod(
        [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "LOG_LEVEL", "value": "info"}],
        {"example.com/ApiKey": "k-123"},
    )
    event = audit("create", "pods", level="Request", request=pod)
    counters = redacted(event, RedactionConfig(keys=("db_password", "apikey")))
    container = event["requestObject"]["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "DB_PASSWORD", "value": REDACTED},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    assert event["requestObject"]["metadata"]["annotations"] == {"example.com/ApiKey": "k-123"}
    assert counters.by_reason("redacted") == {"config_key": 2}
    other = audit("create", "pods", level="Request", request=_pod([], {"apikey": "k-123"}))
    redacted(other, RedactionConfig(keys=("APIKEY",)))
    assert other["requestObject"]["metadata"]["annotations"] == {"apikey": REDACTED}


def test_config_keys_also_apply_to_the_events_own_annotations() -> None:
    event = audit("get", "pods", name="api-7d9c", level="Metadata")
    event["annotations"]["example.com/session-ticket"] = "t-7f3a9c"
    counters = redacted(event, RedactionConfig(keys=("Example.com/Session-Ticket",)))
    assert event["annotations"]["example.com/session-ticket"] == REDACTED
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert counters.by_reason("redacted") == {"config_key": 1}


def test_config_paths_redact_what_they_reach_with_wildcards_and_indexes() -> None:
    pod = _pod([{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {}}}])
    event = audit("create", "pods", level="Request", request=pod)
    config = RedactionConfig(paths=("requestObject.spec.containers.0.env.*.value",))
    counters = redacted(event, config)
    first, second = event["requestObject"]["spec"]["containers"]
    assert first["env"] == [
        {"name": "A", "value": REDACTED},
        {"name": "B", "valueFrom": {"secretKeyRef": {}}},
    ]
    assert second["env"][0] == {"name": "A", "value": "1"}
    assert counters.by_reason("redacted") == {"config_path": 1}


def test_a_config_path_reaches_a_key_with_dots_and_any_event_field() -> None:
    pod = _pod([], {"vault.example.com/token": "hvs.CAESIJ"})
    event = audit("create", "pods", level="Request", request=pod)
    config = RedactionConfig(
        paths=("requestObject.metadata.annotations.vault.example.com/token", "user.groups")
    )
    redacted(event, config)
    assert event["requestObject"]["metadata"]["annotations"] == {
        "vault.example.com/token": REDACTED
    }
    assert event["user"]["groups"] == REDACTED


def test_config_patterns_replace_the_match_or_only_the_group_named_secret() -> None:
    pod = _pod([], {"a": "db=postgres://shop:Sup3r@db/shop", "b": "pin 4711 and pin 0815"})
    event = audit("create", "pods", level="Request", request=pod)
    event["requestURI"] += "?pin=0815"
    config = RedactionConfig(patterns=(r"postgres://[^@\s]+@", r"pin[ =](?P<secret>\d+)"))
    counters = redacted(event, config)
    assert event["requestObject"]["metadata"]["annotations"] == {
        "a": f"db={REDACTED}db/shop",
        "b": f"pin {REDACTED} and pin {REDACTED}",
    }
    assert event["requestURI"].endswith(f"?pin={REDACTED}")
    assert counters.by_reason("redacted") == {"config_pattern": 4}


def test_config_resources_are_redacted_like_secrets() -> None:
    configmap = _configmap({"DATABASE_URL": "postgres://shop:pw@db/shop"})
    configmap["binaryData"] = {"keystore.p12": base64.b64encode(b"\x30\x82").decode()}
    event = audit("create", "configmaps", level="Request", request=configmap)
    redacted(event, RedactionConfig(resources=("configmaps",)))
    assert event["requestObject"]["data"] == {"DATABASE_URL": REDACTED}
    assert event["requestObject"]["binaryData"] == {"keystore.p12": REDACTED}


def test_a_config_resource_with_a_group_matches_only_that_group() -> None:
    sealed = {
        "kind": "SealedSecret",
        "apiVersion": "bitnami.com/v1alpha1",
        "metadata": {"name": "postgres-credentials", "namespace": "shop"},
        "spec": {
            "encryptedData": {"password": "AgBy3i4OJSWK+PiTySYZZA=="},
            "template": {"type": "Opaque"},
        },
    }
    config = RedactionConfig(resources=("SealedSecrets.bitnami.com",))
    event = audit("create", "sealedsecrets", group="bitnami.com", request=copy.deepcopy(sealed))
    redacted(event, config)
    assert event["requestObject"]["spec"] == {
        "encryptedData": {"password": REDACTED},
        "template": {"type": REDACTED},
    }
    elsewhere = audit("create", "sealedsecrets", group="example.com", request=sealed)
    assert Redactor(config).redact(elsewhere) is False


def test_a_disabled_redactor_changes_nothing() -> None:
    event = audit("create", "secrets", request=secret(data={"password": PASSWORD}))
    before = copy.deepcopy(event)
    assert Redactor(RedactionConfig(enabled=False)).redact(event) is False
    assert event == before


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            RedactionConfig(patterns=("ok", "token=(\\w+")),
            "invalid redaction pattern 'token=(\\\\w+'",
        ),
        (RedactionConfig(paths=("requestObject..data",)), "invalid redaction path"),
        (RedactionConfig(resources=("secrets.",)), "invalid redaction resource 'secrets.'"),
        (RedactionConfig(keys=("",)), "an empty name in redaction.keys"),
    ],
)
def test_invalid_configuration_is_rejected_at_construction(
    config: RedactionConfig, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Redactor(config)


def test_an_invalid_regex_error_names_the_pattern_and_the_problem() -> None:
    with pytest.raises(ValueError) as info:
        Redactor(RedactionConfig(patterns=("[unclosed",)))
    assert str(info.value).startswith("invalid redaction pattern '[unclosed': ")
    assert "unterminated character set" in str(info.value)


def test_the_configuration_rejects_unknown_keys() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"enabled": True, "key": ["x"]}, RedactionConfig)


# --- what stays ---


def test_events_without_secrets_are_untouched_and_redact_returns_false() -> None:
    events = list(generate_events(days=1))
    before = copy.deepcopy(events)
    counters = Counters("server")
    redactor = Redactor(counters=counters)
    assert not any(redactor.redact(event) for event in events)
    assert events == before
    assert counters.total("redacted") == 0


def test_public_audit_corpus_events_are_untouched() -> None:
    events: list[dict[str, Any]] = []
    for line in (CORPUS / "panther-k8s-rule-tests" / "panther_k8s_rule_tests.jsonl").open("rb"):
        events.append(orjson.loads(line)["log"])
    for path in sorted((CORPUS / "falco-k8s-audit-traces").glob("*.json")):
        events.extend(orjson.loads(line) for line in path.read_bytes().splitlines() if line)
    assert len(events) > 300
    before = copy.deepcopy(events)
    redactor = Redactor()
    assert [redactor.redact(event) for event in events if isinstance(event, dict)].count(True) == 0
    assert events == before


def test_metadata_level_secret_events_are_untouched() -> None:
    event = audit("get", "secrets", name="postgres-credentials", level="Metadata")
    assert Redactor().redact(event) is False


def _all_redacted_events() -> list[dict[str, Any]]:
    applied = json.dumps({"kind": "Secret", "data": {"password": PASSWORD}})
    return [
        audit("create", "secrets", request=secret(data={"p": PASSWORD}, last_applied=True)),
        audit("patch", "secrets", request=[{"op": "add", "path": "/data/p", "value": PASSWORD}]),
        audit("patch", "secrets", request="data:\n  p: x\n"),
        audit("get", "secrets", response=secret(data={"p": PASSWORD}, last_applied=True)),
        audit(
            "create",
            "serviceaccounts",
            subresource="token",
            response={"kind": "TokenRequest", "status": {"token": JWT}},
        ),
        audit(
            "create",
            "configmaps",
            request=_configmap(
                {
                    "a": f"Bearer abc0123456789 Basic {BASIC} {JWT} {JOIN_TOKEN}",
                    "b": applied,
                    "Authorization": "x",
                }
            ),
        ),
    ]


@pytest.mark.parametrize("index", range(6))
def test_redacting_twice_changes_nothing_more(index: int) -> None:
    config = RedactionConfig(
        keys=("b",), paths=("requestObject.metadata.name",), patterns=("redacted", ".*")
    )
    for redactor in (Redactor(), Redactor(config)):
        event = _all_redacted_events()[index]
        assert redactor.redact(event) is True
        once = copy.deepcopy(event)
        assert redactor.redact(event) is False
        assert event == once


def test_counters_are_optional_and_count_by_reason() -> None:
    event = _all_redacted_events()[5]
    assert Redactor().redact(copy.deepcopy(event)) is True
    counters = Counters("server")
    Redactor(counters=counters).redact(event)
    assert counters.by_reason("redacted") == {
        "authorization_header": 1,
        "basic": 1,
        "bearer": 1,
        "join_token": 1,
        "jwt": 1,
    }
    assert counters.snapshot()["server_redacted{jwt}"] == 1


# --- any input ---


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"objectRef": None, "requestObject": None},
        {"objectRef": [], "requestObject": [1, "two", None]},
        {"objectRef": {"resource": ["secrets"], "apiGroup": {}}, "requestObject": {"kind": []}},
        {"objectRef": {"resource": "secrets"}, "requestObject": 42, "responseObject": True},
        {"objectRef": {"resource": "secrets"}, "requestObject": {"data": [PASSWORD, {"k": 1}]}},
        {"objectRef": {"resource": "secrets"}, "requestObject": {"items": [None, 3, {"data": 7}]}},
        {"objectRef": {"resource": "secrets"}, "requestObject": [None, {"op": "add"}, "x"]},
        {"objectRef": {"resource": "secrets"}, "annotations": ["Bearer abc0123456789"]},
        {"requestObject": {"metadata": {"annotations": {LAST_APPLIED: 5}}}, "requestURI": 9},
        {"requestObject": {1: "Bearer abc0123456789", None: JWT}},
        {"objectRef": {"resource": "tokenreviews"}, "requestObject": {"spec": ["token"]}},
    ],
)
def test_odd_shapes_never_raise(raw: dict[str, Any]) -> None:
    counters = Counters("server")
    Redactor(RedactionConfig(paths=("requestObject.*.*",), keys=("k",)), counters).redact(raw)
    assert counters.get("redacted", reason="failed") == 0
    assert PASSWORD not in repr(raw)


def test_deeply_nested_bodies_never_raise() -> None:
    deep: Any = PASSWORD
    for _ in range(20_000):
        deep = [deep]
    event = audit("create", "secrets", request={"data": {"p": deep}}, response={"x": deep})
    counters = Counters("server")
    assert Redactor(counters=counters).redact(event) is True
    assert counters.get("redacted", reason="secret_data") == 1
    assert counters.get("redacted", reason="failed") == 0


def test_an_internal_error_drops_what_could_hold_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Redactor, "_redact", broken)
    event = audit("create", "secrets", request=secret(data={"password": PASSWORD}))
    event["requestURI"] += "?fieldManager=kubectl-client-side-apply"
    event["annotations"]["example.com/note"] = "Bearer abc0123456789"
    counters = redacted(event)
    assert event["requestObject"] == REDACTED
    assert event["annotations"] == {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": event["annotations"]["authorization.k8s.io/reason"],
        "example.com/note": REDACTED,
    }
    assert event["requestURI"] == f"/api/v1/namespaces/shop/secrets?{REDACTED}"
    assert counters.by_reason("redacted") == {"failed": 1}


def test_something_other_than_a_mapping_is_left_alone() -> None:
    not_an_event: Any = [f"Bearer {JWT}"]
    assert Redactor().redact(not_an_event) is False
    assert not_an_event == [f"Bearer {JWT}"]


# Planted secrets: made of characters no generated text contains, so finding one means a leak.
PLANTED = [f"PLANTED{n}Zq9xW7vK2mT5" for n in range(10)]
_SAFE = st.text(alphabet="abcdefgh ijklmn:/._-{}[]\"'=,", max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _SAFE,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_SAFE, children, max_size=4),
    max_leaves=25,
)
_any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    resource=st.sampled_from(["secrets", "configmaps", "pods", "tokenreviews", "serviceaccounts"]),
    subresource=st.sampled_from([None, "token", "status"]),
    request=_any,
    response=_any,
    annotations=_any,
    uri=st.one_of(st.none(), st.text(max_size=30)),
)
def test_random_shapes_never_raise_and_redacting_is_idempotent(
    resource: str, subresource: str | None, request: Any, response: Any, annotations: Any, uri: Any
) -> None:
    raw = {
        "objectRef": {"resource": resource, "subresource": subresource},
        "requestObject": request,
        "responseObject": response,
        "annotations": annotations,
        "requestURI": uri,
    }
    counters = Counters("server")
    config = RedactionConfig(keys=("a",), paths=("requestObject.*.a",), patterns=("[0-9]{3}",))
    for redactor in (Redactor(counters=counters), Redactor(config, counters)):
        event = copy.deepcopy(raw)
        redactor.redact(event)
        once = copy.deepcopy(event)
        assert redactor.redact(event) is False
        assert event == once
    assert counters.get("redacted", reason="failed") == 0


def _plant(tree: Any, name: str, value: Any, draw: st.DrawFn) -> Any:
    """``tree`` with ``value`` put under ``name`` in a random map of it (or wrapped in one)."""
    maps: list[dict[str, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            maps.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if not maps:
        return {"wrapped": tree, name: value}
    draw(st.sampled_from(maps))[name] = value
    return tree


@st.composite
def _secret_events(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic-shaped event with secrets planted where redaction must find them."""
    data = {f"k{n}": PLANTED[n] for n in range(draw(st.integers(0, 3)))}
    body = draw(st.dictionaries(_SAFE, _json, max_size=4))
    body.update(kind="Secret", data=data, stringData={"s": PLANTED[3]})
    body["metadata"] = {
        "name": "x",
        "annotations": {LAST_APPLIED: json.dumps({"data": {"p": PLANTED[4]}})},
    }
    response = {
        "kind": "SecretList",
        "items": [copy.deepcopy(body) for _ in range(draw(st.integers(0, 2)))],
    }
    prefix, suffix = draw(_SAFE), draw(_SAFE)
    texts = [
        f"{prefix} Bearer {PLANTED[5]} {suffix}",
        f"{prefix} K10{CA_HASH}::server:{PLANTED[6]} {suffix}",
        f"{prefix} {JWT[:40]}{PLANTED[7]}.sig {suffix}",
    ]
    other = draw(_json)
    for index, text in enumerate(texts):
        other = _plant(other, f"planted-{index}", text, draw)
    event = audit(
        draw(st.sampled_from(["create", "update", "get", "list", "patch"])),
        "secrets",
        request=body,
        response=response,
    )
    event["annotations"]["note"] = draw(st.sampled_from(texts))
    event["responseObject"]["extra"] = other
    return event


@st.composite
def _token_events(draw: st.DrawFn) -> dict[str, Any]:
    """A TokenReview or TokenRequest with random neighbours around the planted token."""
    request = draw(st.dictionaries(_SAFE, _json, max_size=4))
    response = draw(st.dictionaries(_SAFE, _json, max_size=4))
    if draw(st.booleans()):
        request["spec"] = {"token": PLANTED[8], **draw(st.dictionaries(_SAFE, _json, max_size=3))}
        response["spec"] = {"token": PLANTED[9]}
        return audit("create", "tokenreviews", request=request, response=response)
    response["status"] = {"token": PLANTED[9], **draw(st.dictionaries(_SAFE, _json, max_size=3))}
    return audit("create", "serviceaccounts", subresource="token", response=response)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=st.one_of(_secret_events(), _token_events()))
def test_planted_secrets_never_survive_redaction(event: dict[str, Any]) -> None:
    text = repr(event)  # (orjson does not write integers beyond 64 bits)
    planted = [value for value in PLANTED if value in text]
    assert planted
    counters = Counters("server")
    assert Redactor(counters=counters).redact(event) is True
    text = repr(event)
    for value in planted:
        assert value not in text
    assert counters.get("redacted", reason="failed") == 0
