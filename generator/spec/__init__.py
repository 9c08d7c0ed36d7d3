"""From a spec file to the ServiceModel: load (with positions) → validate → build."""

from generator.spec.load import SourceMap, load_yaml
from generator.spec.model import ServiceModel
from generator.spec.build import load_spec

__all__ = ["ServiceModel", "SourceMap", "load_spec", "load_yaml"]
