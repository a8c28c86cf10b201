"""Keep the passages a prompt shows within the model's context window, whatever top_k asked for."""

from __future__ import annotations

import math
from dataclasses import replace

from haystack import Document, component, logging

from components.env_values import NumberOrReference, check_number_reference, resolve_number
from components.validation import check_int, check_positive_number

logger = logging.getLogger(__name__)


def estimate_tokens(text: str, chars_per_token: float) -> int:
    """A cheap, cautious token count: every digit is a token (Qwen and Llama tokenizers split numbers into digits),
    every other UTF-8 byte is `1 / chars_per_token` of one (so a CJK character, 3 bytes, is about one token)."""
    digits = sum(ch.isdigit() for ch in text)
    other_bytes = len(text.encode("utf-8")) - digits
    return digits + math.ceil(other_bytes / chars_per_token)


@component
class ContextBudget:
    """
    Trims the passages of a prompt to a token budget, so a large `top_k` or a long chunk never overflows `n_ctx`.

    Passages are kept in order while their estimated tokens (plus `passage_overhead_tokens` each, for the `[n] (from
    file, page)` line) fit `max_context_tokens`; the first one that does not fit is cut at the budget (when at least
    `min_passage_tokens` remain, and always for the first passage: a prompt is never left without a passage) and
    marked `truncated: True` in its meta; the rest are left out. The kept passages are a prefix of the input, so the
    prompt's `[n]` numbers still name the same documents as in the input list (the answer builder's and the API's
    sources). It never raises on its input.

    The default budget is for `n_ctx` 4096: 4096 - 320 answer tokens - ~1150 for a 4000-character question - ~200 for
    the instructions; write the budget as `"${RAG_CONTEXT_TOKENS:-2400}"` to let the deployment set it.
    """

    def __init__(
        self,
        *,
        max_context_tokens: NumberOrReference = 2400,
        chars_per_token: float = 3.5,
        passage_overhead_tokens: int = 24,
        min_passage_tokens: int = 32,
    ) -> None:
        """
        :param max_context_tokens: tokens the passages may take in the prompt, or a `${VAR:-default}` reference.
        :param chars_per_token: bytes of (non-digit) text per token of the estimate; lower is more cautious.
        :param passage_overhead_tokens: tokens counted per passage for its header line.
        :param min_passage_tokens: a passage cut shorter than this is left out (except the first one).
        :raises ValueError: on an invalid argument.
        """
        check_number_reference(max_context_tokens, "max_context_tokens")
        self.max_context_tokens = max_context_tokens
        self.chars_per_token = check_positive_number(chars_per_token, "chars_per_token")
        self.passage_overhead_tokens = check_int(passage_overhead_tokens, "passage_overhead_tokens", minimum=0)
        self.min_passage_tokens = check_int(min_passage_tokens, "min_passage_tokens", minimum=1)
        self._budget: int | None = None

    def warm_up(self) -> None:
        """Resolve the budget (a `${VAR:-default}` reference is read from the environment once)."""
        if self._budget is None:
            self._budget = int(resolve_number(self.max_context_tokens, "max_context_tokens"))

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: The passages for the prompt, in prompt order.
        :returns: `documents`: the prefix that fits the budget, its last passage possibly cut (meta `truncated`).
        """
        self.warm_up()
        assert self._budget is not None
        left = self._budget
        kept: list[Document] = []
        for doc in documents:
            content = doc.content or ""
            cost = self.passage_overhead_tokens + estimate_tokens(content, self.chars_per_token)
            if cost <= left:
                kept.append(doc)
                left -= cost
                continue
            room = left - self.passage_overhead_tokens
            if room >= self.min_passage_tokens or not kept:
                cut = self._cut(content, max(room, self.min_passage_tokens))
                kept.append(replace(doc, content=cut, meta={**doc.meta, "truncated": True}))
            break
        if len(kept) < len(documents) or (kept and kept[-1].meta.get("truncated")):
            logger.info(
                "Context budget: {kept} of {total} passages fit {budget} tokens (the last one cut: {cut})",
                kept=len(kept),
                total=len(documents),
                budget=self._budget,
                cut=bool(kept and kept[-1].meta.get("truncated")),
            )
        return {"documents": kept}

    def _cut(self, text: str, tokens: int) -> str:
        """The longest prefix of `text` whose estimate fits `tokens`, ended at a word boundary when one is near."""
        tokens = max(tokens - 2, 1)  # room for the " …" mark
        low, high = 0, min(len(text), math.ceil(tokens * self.chars_per_token))
        while low < high:  # the estimate grows with the prefix: binary search for the longest fitting one
            middle = (low + high + 1) // 2
            if estimate_tokens(text[:middle], self.chars_per_token) <= tokens:
                low = middle
            else:
                high = middle - 1
        prefix = text[:low]
        space = prefix.rfind(" ")
        if low < len(text) and space > low * 0.8:
            prefix = prefix[:space]
        return prefix.rstrip() + (" …" if low < len(text) else "")
