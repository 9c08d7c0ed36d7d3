"""From a spec file to the ServiceModel: load (with positions) → validate → build."""

from mlgen.spec.load import SourceMap, load_yaml
from mlgen.spec.model import ServiceModel
from mlgen.spec.build import load_spec

__all__ = ["ServiceModel", "SourceMap", "load_spec", "load_yaml"]
