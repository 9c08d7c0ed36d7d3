"""Send the spec's examples to one instance and check its answers: the one judge of an answer,
for `mlgen verify` (generator/examples.py) and for a bundle's own release checks.

Copied verbatim beside release/examples.json (examples.release_files), so it uses the standard
library only: the on-prem install.sh runs it with the host's Python against each instance of a new
version before nginx sends it any traffic; a Kubernetes release runs it in a Job from the new
image against the new pods' Service; a Lambda release's PreTraffic hook imports `judge`.
examples.json holds the requests and expected answers (examples.documents), numbers compared
within each tolerance.

Usage: python3 smoke.py EXAMPLES.JSON URL   (URL: http://127.0.0.1:PORT/v2/models/NAME/infer)
With security.auth api_key: MLGEN_SMOKE_HEADER names the header, and MLGEN_SMOKE_KEY_FILE names a
file holding the key (a mounted Secret) or MLGEN_SMOKE_KEY holds it; never an argument, which every
process on the host can read.
Exit codes: 0 every answer right, 1 a wrong answer or no answer (the reason on stderr).
"""

from __future__ import annotations

import json
import math
import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 30


def flat(data: object) -> list:
    if not isinstance(data, list):
        return [data]
    return [item for part in data for item in flat(part)]


def same(expected: list, got: object, tolerance: float) -> bool:
    if not isinstance(got, list) or len(got) != len(expected):
        return False
    for want, have in zip(expected, got):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (want, have))
        if numbers and not math.isclose(want, have, rel_tol=tolerance, abs_tol=tolerance):
            return False
        if not numbers and want != have:
            return False
    return True


def credential_headers(header: str | None, key: str | None) -> dict[str, str]:
    """The header an API key travels in: `Authorization: Bearer KEY`, or the key as it is in the
    spec's own header (security.header); nothing without both."""
    if not header or not key:
        return {}
    return {header: f"Bearer {key}" if header.lower() == "authorization" else key}


def api_key() -> str | None:
    path = os.environ.get("MLGEN_SMOKE_KEY_FILE")
    if path:
        with open(path, encoding="utf-8") as file:
            return file.read().strip("\r\n")
    return os.environ.get("MLGEN_SMOKE_KEY")


def send(url: str, request: dict, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    post = urllib.request.Request(url, json.dumps(request).encode(), {"content-type": "application/json", **(headers or {})})
    try:
        with opener.open(post, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def judge(example: dict, status: int, body: bytes) -> str | None:
    """None when the answer is right, else what is wrong with it."""
    label = example["label"]
    try:
        answer = json.loads(body)
    except ValueError:
        return f"{label}: HTTP {status} with a body that is not JSON: {body[:200]!r}"
    if status != 200:
        return f"{label}: HTTP {status}: {answer.get('error', answer) if isinstance(answer, dict) else answer}"
    outputs = {o.get("name"): o for o in answer.get("outputs", []) if isinstance(o, dict)}
    missing = [name for name in example["outputs"] if name not in outputs]
    if missing:
        return f"{label}: the answer has no output {', '.join(missing)} (it has {', '.join(map(str, outputs)) or 'none'})"
    for name, expected in example["expected"].items():
        got = outputs[name].get("data")
        if not same(flat(expected), got, example["tolerance"]):
            return f"{label}: output {name} is {json.dumps(got)[:120]}, expected {json.dumps(flat(expected))[:120]}"
    return None


def main(examples_path: str, url: str) -> int:
    with open(examples_path, encoding="utf-8") as file:
        examples = json.load(file)
    headers = credential_headers(os.environ.get("MLGEN_SMOKE_HEADER"), api_key())
    for example in examples:
        try:
            status, body = send(url, example["request"], headers)
        except (OSError, urllib.error.URLError) as error:
            print(f"{example['label']}: no answer from {url}: {error}", file=sys.stderr)
            return 1
        wrong = judge(example, status, body)
        if wrong:
            print(wrong, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[2])
    sys.exit(main(sys.argv[1], sys.argv[2]))
