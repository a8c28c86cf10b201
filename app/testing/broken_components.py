"""Deliberately broken pipeline parts, to prove the CI quality gate catches them (test support, never shipped YAML).

Pipelines accept these types only while Haystack's HAYSTACK_DESERIALIZATION_ALLOWLIST names `app.testing`, as the
test plugin (`app.testing.plugin`) does.
"""

from __future__ import annotations

import numpy as np
from haystack import component

from components.builders.context_selector import ContextSelector


@component
class WorstSentencesSelector(ContextSelector):
    """A `ContextSelector` whose scores are turned upside down: it keeps the sentences least related to the
    question, within the same budget and with the same passage numbering."""

    def score_units(self, question: str, texts: list[str], query_embedding: list[float] | None = None) -> np.ndarray:
        # Haystack's @component rebuilds the class, so zero-argument super() does not apply here
        return -ContextSelector.score_units(self, question, texts, query_embedding)
