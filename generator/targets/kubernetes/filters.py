"""Escaping filters for what Kubernetes itself rewrites inside a manifest."""

from __future__ import annotations


def k8s_expand(value: object) -> str:
    """A string the kubelet passes on exactly as written where it expands variables: a container's
    `env[].value`, `command` and `args`. There `$(NAME)` becomes the value of an earlier variable
    and `$$` becomes `$` (the API reference, "EnvVar" and "Container"); doubling every `$` leaves
    only escaped dollars, which expand back to the original text. Apply it before the YAML filter."""
    return str(value).replace("$", "$$")


def kserve_placeholders(value: object) -> str:
    """A string KServe passes on exactly as written inside a ServingRuntime's container. KServe
    renders that whole container, as JSON, through Go's text/template with the InferenceService's
    metadata (ReplacePlaceholders in pkg/controller/.../utils.go), so `{{` opens an action; each one
    becomes the action {{`{{`}}, which prints `{{` back. A raw string (backquotes) because inside
    the JSON a double quote would arrive escaped. Apply it after k8s_expand, before the YAML filter."""
    return str(value).replace("{{", "{{`{{`}}")


FILTERS = {"k8s_expand": k8s_expand, "kserve_placeholders": kserve_placeholders}
