"""Jinja rendering with escaping filters, and parse-back checks of what was rendered."""

from mlgen.render.environment import Renderer, RenderedFile
from mlgen.render.checks import check_files

__all__ = ["RenderedFile", "Renderer", "check_files"]
