"""Where batches go: ``local`` (SQLite, the default), ``http``, ``memory`` (tests)."""

from .base import EncodedBatch, Exporter, ExportError

__all__ = ["EncodedBatch", "ExportError", "Exporter"]
