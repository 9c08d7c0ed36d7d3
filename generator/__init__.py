"""mlgen: one model-serving spec, rendered into on-prem, cloud VM, Kubernetes and serverless deployments."""

__version__ = "0.1.0"
# The distribution on the package index (pyproject.toml's name): the import package is mlgen.
DISTRIBUTION = "mlgen-deploy"
