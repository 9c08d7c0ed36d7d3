"""Kubernetes' own variable expansion, to read env values and commands back from rendered
manifests as the kubelet hands them to the process."""

from __future__ import annotations


def kubernetes_env(container: dict) -> dict[str, str]:
    """A container's `env` as the kubelet hands it to the process: each `value` expanded by
    Kubernetes' rules against the variables defined before it in the same list (secrets count as
    defined; their values are not in the manifest)."""
    defined: dict[str, str] = {}
    for variable in container.get("env", []):
        if "value" in variable:
            defined[variable["name"]] = kubernetes_expand(variable["value"], defined)
        else:
            defined[variable["name"]] = f"<secret {variable['name']}>"
    return {e["name"]: defined[e["name"]] for e in container.get("env", []) if "value" in e}


def kubernetes_expand(text: str, defined: dict[str, str]) -> str:
    """Kubernetes' variable expansion in env values, command and args (Expand in
    third_party/forked/golang/expansion/expand.go): `$$` is `$`; `$(NAME)` is NAME's value when
    NAME is defined, else stays as written; a `$(` without `)`, a `$` before anything else and a
    final `$` stay as written."""
    out, index = [], 0
    while index < len(text):
        if text[index] != "$" or index + 1 == len(text):
            out.append(text[index])
            index += 1
            continue
        following = text[index + 1]
        close = text.find(")", index + 2) if following == "(" else -1
        if following == "$":
            out.append("$")
        elif close >= 0:
            name = text[index + 2:close]
            out.append(defined.get(name, f"$({name})"))
            index = close + 1
            continue
        else:
            out.append("$" + following)
        index += 2
    return "".join(out)


def workload_containers(document: dict) -> list[dict]:
    """The containers a rendered object runs, whatever its kind (Deployment, Argo Rollout, Knative Service,
    KServe InferenceService or ServingRuntime), with their env as the platform hands it to the
    kubelet: a ServingRuntime's container first goes through KServe's templating."""
    spec = document.get("spec") or {}
    if document["kind"] == "InferenceService":
        return [c for component in spec.values() for c in component.get("containers", [])]
    if document["kind"] == "ServingRuntime":
        return [{**c, "env": [{**e, "value": kserve_templated(e["value"])} if "value" in e else e for e in c.get("env", [])]}
                for c in spec["containers"]]
    if document["kind"] in ("Deployment", "Rollout", "Service"):
        return (spec.get("template") or {}).get("spec", {}).get("containers", [])
    return []


def kserve_templated(text: str) -> str:
    """What KServe's Go text/template (ReplacePlaceholders, over the container's JSON) makes of a
    string mlgen escaped: each {{`{{`}} action prints `{{`. Any other action left in the text would
    be a template KServe runs, so there must be none."""
    rendered = text.replace("{{`{{`}}", "\x00")
    assert "{{" not in rendered, f"an unescaped template action in {text!r}"
    return rendered.replace("\x00", "{{")
