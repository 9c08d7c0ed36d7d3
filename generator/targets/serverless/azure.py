"""Azure Functions (Python v2 programming model): function_app.py with one catch-all HTTP
trigger, host.json, requirements.txt, local.settings.json.example, .funcignore and deploy.sh
(resource group, storage, function app for the chosen plan, settings, Core Tools publish)."""

from __future__ import annotations


from generator.monitoring.native import azure_metric_alerts
from generator.render import RenderedFile, Renderer
from generator.render.filters import pretty_json
from generator.spec import ServiceModel
from generator.targets.serverless.common import Function, azure_instance, function_app_files, requirements_file


def function_timeout(seconds: int) -> str:
    """host.json's functionTimeout, hh:mm:ss."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def host_json(function: Function) -> dict:
    return {
        "version": "2.0",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
        "functionTimeout": function_timeout(function.timeout_s),
        # No /api prefix: the function answers the runtime's own paths (/v2/models/NAME/infer).
        "extensions": {"http": {"routePrefix": ""}},
        "logging": {"logLevel": {"default": "Information"}},
    }


def local_settings(model: ServiceModel) -> dict:
    values = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "FUNCTIONS_WORKER_RUNTIME": "python",
              **dict(model.env)}
    values.update({s.name: f"<value of Key Vault secret {s.secret}>" for s in model.secrets})
    return {"IsEncrypted": False, "Values": values}


def plan(model: ServiceModel, function: Function, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "function": function,
               "instance": azure_instance(function.memory_mb, function.plan), "alerts": azure_metric_alerts(model)}
    return [
        renderer.file("function_app.py", "serverless/azure/function_app.py.j2", **context),
        renderer.file(".funcignore", "serverless/azure/funcignore.j2", **context),
        renderer.file("deploy.sh", "serverless/azure/deploy.sh.j2", mode=0o755, **context),
        RenderedFile.text("host.json", pretty_json(host_json(function))),
        RenderedFile.text("local.settings.json.example",
                          pretty_json(local_settings(model))),
        requirements_file(model, "azure"),
        *function_app_files(model, function),
    ]
