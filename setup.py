"""Packaging: the repository keeps its code in generator/, and installs it as the import package
`mlgen` (so installing mlgen does not claim the generic name `generator`), with templates/ and
specs/ inside it. Every folder under generator/ is included, so a new target folder needs no entry
here. Everything else about the project is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

SUBPACKAGES = find_namespace_packages("generator", exclude=["*__pycache__*"])

setup(
    packages=["mlgen", *(f"mlgen.{name}" for name in SUBPACKAGES), "mlgen.templates", "mlgen.specs"],
    package_dir={"mlgen": "generator", "mlgen.templates": "templates", "mlgen.specs": "specs"},
    package_data={"": ["*.json", "*.j2", "*.joblib", "*.onnx"], "mlgen.templates": ["**/*"]},
)
