"""Escaping filters for what Kubernetes itself rewrites inside a manifest."""

from __future__ import annotations


def k8s_expand(value: object) -> str:
    """A string the kubelet passes on exactly as written where it expands variables: a container's
    `env[].value`, `command` and `args`. There `$(NAME)` becomes the value of an earlier variable
    and `$$` becomes `$` (the API reference, "EnvVar" and "Container"); doubling every `$` leaves
    only escaped dollars, which expand back to the original text. Apply it before the YAML filter."""
    return str(value).replace("$", "$$")


FILTERS = {"k8s_expand": k8s_expand}
