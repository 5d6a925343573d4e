"""The one error type of bag tools: its message names the bag, the topic and what is missing or wrong."""

from __future__ import annotations


class BagError(RuntimeError):
    """A bag that cannot be converted or evaluated as asked (missing topic, wrong type, truncated file, ...)."""
