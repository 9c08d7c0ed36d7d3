"""Jinja rendering with escaping filters, and parse-back checks of what was rendered."""

from generator.render.environment import Renderer, RenderedFile
from generator.render.checks import check_files

__all__ = ["RenderedFile", "Renderer", "check_files"]
