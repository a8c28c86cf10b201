"""Make every grounded answer cite its passages, even when a small model forgets the [n] markers."""

from __future__ import annotations

import math
import re

from haystack import Document, component
from haystack.dataclasses import ChatMessage

from components.validation import check_int

_TOKEN = re.compile(r"[a-z0-9_][a-z0-9_.$@-]*(?:\(\))?", re.IGNORECASE)
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from has have how i if in into is it its of on or that the this to "
    "use used using was were what when where which who why will with you your".split()
)


def _tokens(text: str) -> set[str]:
    return {t.lower().rstrip(".") for t in _TOKEN.findall(text)} - _STOPWORDS


@component
class CitationAttributor:
    """
    Adds `[n]` citations to answers that have none, by attributing the answer to the passage it overlaps most.

    Small local models often answer correctly but drop the `[n]` markers the prompt asks for. When a reply already
    cites a valid passage, or says "I don't know", it is passed through untouched. Otherwise each passage is scored
    by the IDF-weighted overlap of its words with the answer's words; the best passage (if it shares at least
    `min_overlap` distinctive words) is cited by appending ` [n]` (the reply's own text stays a prefix of the answer,
    so streamed tokens plus the marker make the answer), and the reply's meta gets `citations: "inferred"` so clients
    can tell inferred citations from the model's own.
    """

    def __init__(self, *, min_overlap: int = 2, max_citations: int = 2, refusal_prefix: str = "I don't know") -> None:
        """
        :param min_overlap: Distinct shared words (stop words excluded) needed to cite a passage.
        :param max_citations: At most this many passages are cited (the best, then any within 80 % of its score).
        :param refusal_prefix: Replies starting with this text are refusals and get no citation.
        """
        self.min_overlap = check_int(min_overlap, "min_overlap", minimum=1)
        self.max_citations = check_int(max_citations, "max_citations", minimum=1)
        self.refusal_prefix = refusal_prefix

    @component.output_types(replies=list[ChatMessage])
    def run(self, replies: list[ChatMessage], documents: list[Document] | None = None) -> dict[str, list[ChatMessage]]:
        """
        :param replies: The generator's replies (or a refusal).
        :param documents: The numbered passages the prompt showed, in prompt order.
        :returns: `replies` with citations added where they were missing.
        """
        if not documents:
            return {"replies": replies}
        return {"replies": [self._attribute(reply, documents) for reply in replies]}

    def _attribute(self, reply: ChatMessage, documents: list[Document]) -> ChatMessage:
        text = reply.text or ""
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
        if any(1 <= n <= len(documents) for n in cited) or not text.strip():
            return reply
        if text.strip().lower().startswith(self.refusal_prefix.lower()):
            return reply
        answer = _tokens(text)
        passages = [_tokens(doc.content or "") for doc in documents]
        idf = {t: math.log(1 + len(passages) / (1 + sum(t in p for p in passages))) for t in answer}
        scores = []
        for index, words in enumerate(passages):
            shared = answer & words
            if len(shared) >= self.min_overlap:
                scores.append((sum(idf[t] for t in shared), index))
        if not scores:
            return reply
        scores.sort(reverse=True)
        best = scores[0][0]
        chosen = sorted(i + 1 for s, i in scores[: self.max_citations] if s >= 0.8 * best)
        marker = "".join(f"[{n}]" for n in chosen)
        meta = {**reply.meta, "citations": "inferred"}
        # appended, never inserted: the answer still starts with the text the model streamed
        separator = "" if text[-1:].isspace() else " "
        return ChatMessage.from_assistant(f"{text}{separator}{marker}", meta=meta, name=reply.name)
