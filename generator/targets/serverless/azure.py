"""Azure Functions (Python v2 programming model): function_app.py with one catch-all HTTP
trigger, host.json, local.settings.json.example, appsettings.json (the spec's environment, read
by `az` from the file so no value passes through the shell), .funcignore and deploy.sh (resource
group, storage, function app for the chosen plan, settings, Core Tools publish)."""

from __future__ import annotations

from mlgen.render import RenderedFile, Renderer
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel
from mlgen.targets.serverless.settings import FunctionSettings


def host_json(settings: FunctionSettings) -> dict:
    return {
        "version": "2.0",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
        "functionTimeout": settings.function_timeout,
        # No /api prefix: the function answers the runtime's own paths (/v2/models/NAME/infer).
        "extensions": {"http": {"routePrefix": ""}},
        "logging": {"logLevel": {"default": "Information"}},
    }


def local_settings(model: ServiceModel) -> dict:
    values = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "FUNCTIONS_WORKER_RUNTIME": "python",
              **dict(model.env)}
    values.update({s.name: f"<value of Key Vault secret {s.secret}>" for s in model.secrets})
    return {"IsEncrypted": False, "Values": values}


def provider_files(model: ServiceModel, settings: FunctionSettings, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "settings": settings}
    files = [
        renderer.file("function_app.py", "serverless/azure/function_app.py.j2", **context),
        renderer.file(".funcignore", "serverless/azure/funcignore.j2", **context),
        renderer.file("deploy.sh", "serverless/azure/deploy.sh.j2", mode=0o755, **context),
        RenderedFile.text("host.json", pretty_json(host_json(settings))),
        RenderedFile.text("local.settings.json.example", pretty_json(local_settings(model))),
    ]
    # blue_green: the spec's examples, sent to the staging slot before and during the swap's preview.
    files += [RenderedFile.text(path, body.decode()) for path, body in settings.release_examples.items()]
    if settings.app_settings_file:
        files.append(RenderedFile.text(settings.app_settings_file, pretty_json(dict(model.env))))
    return files
