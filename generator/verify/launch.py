"""Start a rendered bundle the way its platform starts it, on this machine, and talk to it.

- a host (onprem, cloud): the unit's own ExecStart, Environment=, EnvironmentFile= and
  WorkingDirectory=, with the install prefix moved into a scratch folder;
- Kubernetes: each Deployment's container command and env, the stages finding each other
  through the stage URLs the gateway reads;
- Google Cloud Functions: functions-framework serving main.py, as the Python runtime does;
- AWS Lambda and Azure Functions: the platform's own call, made by a small driver in the
  function's Python: the Lambda handler with an HTTP API v2 and a REST API event for every
  request, the Azure app's function with an azure.functions.HttpRequest.

Every process is started here and stopped here, by its pid."""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from mlgen.verify.access import Access

READY_TIMEOUT_S = 180  # import + model load of a large model on a slow machine
REQUEST_TIMEOUT_S = 120
READY_PATH = "/v2/health/ready"


class StartFailed(Exception):
    """The bundle did not become ready (the message carries the end of its log)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """One started process, its log, and how to stop it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path, stdin: bool = False):
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE if stdin else out,
                                          stderr=out, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                          start_new_session=True)

    def tail(self, lines: int = 12) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:]) or "(it printed nothing)"

    def exited(self) -> str | None:
        code = self.popen.poll()
        return None if code is None else f"{self.name} exited with status {code}:\n{self.tail()}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=30)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream:
                stream.close()


def http_ready(process: Process, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        failed = process.exited()
        if failed:
            raise StartFailed(failed)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{READY_PATH}", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise StartFailed(f"{process.name} was not ready within {READY_TIMEOUT_S} s:\n{process.tail()}")


def http_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, {"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class HttpService:
    """Processes answering HTTP; requests go to the entry one."""

    def __init__(self, processes: list[Process], ports: list[int], access: Access):
        self.processes, self.port = processes, ports[0]
        self.ports, self.headers = ports, access.headers
        # With runtime.admin_port the entry process answers health there, and only there.
        self.health_ports = [access.admin_port or ports[0], *ports[1:]]

    def wait_ready(self) -> None:
        for process, port in zip(self.processes, self.health_ports):
            http_ready(process, port)

    def ask(self, path: str, body: bytes) -> list[tuple[str, int, bytes]]:
        return [("HTTP", *http_post(self.port, path, body, self.headers))]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


# --- hosts ----------------------------------------------------------------------------------------

def directive(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile=: KEY=VALUE lines, values quoted as the shell would."""
    env = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            (word,) = shlex.split(line) or [""]
            key, _, value = word.partition("=")
            env[key] = value
    return env


def start_host(bundle: Path, unit_name: str, env_name: str, prefix: str, home: str, python: Path,
               scratch: Path, access: Access) -> HttpService:
    """The unit's ExecStart with the install prefix in `scratch` (app/ copied there, the venv
    linked from the cache), bound to 127.0.0.1 on a free port."""
    unit = (bundle / unit_name).read_text(encoding="utf-8")
    port = free_port()
    (command,) = directive(unit, "ExecStart")
    moved = lambda word: str(scratch) + word if word.startswith(prefix + "/") or word == prefix else word
    argv = [moved(word) for word in shlex.split(command.replace("%i", str(port)))]
    # A unit may run the runtime through /bin/sh (credentials exported, an instance's admin port
    # worked out from its port): verify runs the runtime's own command, with the health port it polls.
    argv = argv[next(index for index, word in enumerate(argv) if word.endswith("/venv/bin/python")):]
    _set_option(argv, "--port", str(port))
    if "--host" in argv:
        _set_option(argv, "--host", "127.0.0.1")
    if access.admin_port:
        _set_option(argv, "--admin-port", str(access.admin_port))
        _set_option(argv, "--admin-host", "127.0.0.1")
    # The unit's venv is the cached one: linked as a whole folder, so its python finds pyvenv.cfg.
    venv = Path(argv[0]).parent.parent
    venv.parent.mkdir(parents=True, exist_ok=True)
    venv.symlink_to(python.parent.parent, target_is_directory=True)
    _copy_tree(bundle / "app", Path(moved(home)) / "app")
    env = {"PATH": "/usr/bin:/bin"}
    for line in directive(unit, "Environment"):
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = moved(value)
    env.update(env_file((bundle / env_name).read_text(encoding="utf-8")))
    env["HOME"] = str(scratch / "home")
    env.update(access.env)
    (workdir,) = directive(unit, "WorkingDirectory") or [f"{home}/app"]
    return HttpService([Process(unit_name, argv, env, Path(moved(workdir)), scratch / "service.log")], [port],
                       access)


def _set_option(argv: list[str], option: str, value: str) -> None:
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


# --- Kubernetes -----------------------------------------------------------------------------------

def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(NAME) expansion of a command or env value: $$ is a literal $, $(NAME) of a
    variable defined earlier is its value, anything else stays as written."""
    out, index = [], 0
    while index < len(value):
        if value.startswith("$$", index):
            out.append("$")
            index += 2
        elif value.startswith("$(", index) and ")" in value[index:]:
            end = value.index(")", index)
            name = value[index + 2:end]
            out.append(env.get(name, value[index:end + 1]))
            index = end + 1
        else:
            out.append(value[index])
            index += 1
    return "".join(out)


def start_stages(bundle: Path, deployments: list[dict], app_dir: str, python: Path, scratch: Path,
                 access: Access) -> HttpService:
    """Each Deployment's container, entry stage first; the gateway reaches the other stages at the
    local ports through MLGEN_STAGE_URL_<STAGE>, as the ConfigMap's stage URLs point it in a cluster."""
    stages = []
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
        command = [expand(arg, env) for arg in container.get("command", []) + container.get("args", [])]
        command = [str(python) if arg == "python" else str(bundle / "app") + arg[len(app_dir):]
                   if arg.startswith(app_dir + "/") or arg == app_dir else arg for arg in command]
        stages.append((deployment["metadata"]["name"], command, env, free_port()))
    urls = {}
    for name, command, _env, port in stages[1:]:
        stage = command[command.index("--stage") + 1] if "--stage" in command else name
        urls[f"MLGEN_STAGE_URL_{stage.upper()}"] = f"http://127.0.0.1:{port}"
    processes = []
    for name, command, env, port in stages:
        command[command.index("--port") + 1] = str(port)
        if "--host" in command:
            command[command.index("--host") + 1] = "127.0.0.1"
        full = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), **env, "PYTHONPATH": str(bundle / "app"), **urls,
                **access.env}
        processes.append(Process(name, command, full, bundle / "app", scratch / f"{name}.log"))
    return HttpService(processes, [port for *_, port in stages], access)


# --- functions ------------------------------------------------------------------------------------

def start_gcp(bundle: Path, environment_bin: Path, entry_point: str, scratch: Path, access: Access) -> HttpService:
    port = free_port()
    argv = [str(environment_bin / "functions-framework"), "--source", "main.py", "--target", entry_point,
            "--host", "127.0.0.1", "--port", str(port)]
    env = {"PATH": f"{environment_bin}:/usr/bin:/bin", "HOME": str(scratch), **access.env}
    return HttpService([Process("functions-framework", argv, env, bundle, scratch / "functions-framework.log")], [port],
                       access)


# Runs in the function's own Python: imports the entry point as the platform does, says "ready",
# then answers one JSON request per line with the platform's own call.
_DRIVER = r"""
import base64, importlib.util, json, sys
kind = sys.argv[1]
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
if kind == "lambda":
    handler = load("handler.py", "handler").handler
else:
    import azure.functions as func
    serve = load("function_app.py", "function_app").app.get_functions()[0].get_user_function()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    ask = json.loads(line)
    body = base64.b64decode(ask["body"])
    answers = []
    if kind == "lambda":
        http_api = {"version": "2.0", "routeKey": "$default", "rawPath": ask["path"], "rawQueryString": "",
                    "headers": {"content-type": "application/json", **ask["headers"]}, "isBase64Encoded": True,
                    "body": base64.b64encode(body).decode(),
                    "requestContext": {"http": {"method": "POST", "path": ask["path"], "protocol": "HTTP/1.1",
                                                "sourceIp": "127.0.0.1", "userAgent": "mlgen-verify"},
                                       "stage": "$default", "requestId": "verify", "routeKey": "$default"}}
        rest = {"resource": "/{proxy+}", "path": ask["path"], "httpMethod": "POST", "isBase64Encoded": False,
                "headers": {"Content-Type": "application/json", **ask["headers"]}, "body": body.decode(),
                "requestContext": {"stage": "prod", "requestId": "verify", "httpMethod": "POST"}}
        for name, event in (("HTTP API v2 event", http_api), ("REST API event", rest)):
            reply = handler(event, None)
            data = reply.get("body") or ""
            data = base64.b64decode(data) if reply.get("isBase64Encoded") else data.encode()
            answers.append([name, reply["statusCode"], base64.b64encode(data).decode()])
    else:
        request = func.HttpRequest("POST", "https://verify.azurewebsites.net" + ask["path"],
                                   headers={"Content-Type": "application/json", **ask["headers"]}, params={},
                                   route_params={"path": ask["path"].lstrip("/")}, body=body)
        reply = serve(request)
        answers.append(["azure.functions.HttpRequest", reply.status_code, base64.b64encode(reply.get_body()).decode()])
    print(json.dumps({"answers": answers}), flush=True)
"""


class FunctionHost:
    """The driver process: the function imported by its platform's rules, called per request."""

    def __init__(self, kind: str, bundle: Path, python: Path, site: Path | None, scratch: Path, access: Access):
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(bundle), str(site) if site else None])), **access.env}
        self.headers = access.headers
        self.process = Process(f"the {kind} function", [str(python), "-c", _DRIVER, kind], env, bundle,
                               scratch / f"{kind}.log", stdin=True)

    def _line(self) -> dict:
        line = self.process.popen.stdout.readline()
        if not line:
            raise StartFailed(self.process.exited() or f"{self.process.name} stopped answering:\n{self.process.tail()}")
        return json.loads(line)

    def wait_ready(self) -> None:
        self._line()

    def ask(self, path: str, body: bytes) -> list[tuple[str, int, bytes]]:
        request = json.dumps({"path": path, "body": base64.b64encode(body).decode(), "headers": self.headers}) + "\n"
        self.process.popen.stdin.write(request.encode())
        self.process.popen.stdin.flush()
        return [(name, status, base64.b64decode(data)) for name, status, data in self._line()["answers"]]

    def stop(self) -> None:
        self.process.stop()
