"""Point each `[n]` citation at the passage that holds what its sentence says, in the stream and the answer alike."""

from __future__ import annotations

import re

from haystack import Document, component, logging
from haystack.dataclasses import ChatMessage

from components.validators.claim_checker import content_words, split_sentences, support

logger = logging.getLogger(__name__)

_CITATION = re.compile(r"\[(\d+)\]")
_MARKER = re.compile(r"\[(\d*)(\])?")  # a citation, or the start of one that more text may complete


class CitationStream:
    """
    Rewrites an answer's citations as its text arrives: `feed` each streamed piece and send what it returns, then
    `flush` at the end. Text is passed on at once, except from a `[` that may open a citation until the citation is
    complete (`[12]`) or turns out not to be one. Each citation is decided from the text before it alone, so the
    pieces sent add up to `CitationRepointer.run`'s answer for the whole text, however the text was split.
    """

    def __init__(self, documents: list[Document], min_support: float) -> None:
        """
        :param documents: The numbered passages the prompt showed, in prompt order.
        :param min_support: A citation whose passage holds at least this share of its sentence's words stays.
        """
        self._passages = [content_words(doc.content or "") for doc in documents]
        self._min_support = min_support
        self._text = ""
        self._position = 0  # the text before it has been passed on
        self._group_end = -1  # where the last citation ended: adjacent citations ([1][2]) are one group
        self._group: set[int] = set()
        self.moved: list[tuple[int, int]] = []  # (cited, now cited) for every citation pointed elsewhere

    def feed(self, piece: str) -> str:
        """Take the next piece of the answer; return the text that can be passed on now."""
        self._text += piece
        text, out = self._text, []
        while self._position < len(text):
            start = text.find("[", self._position)
            if start < 0:
                out.append(text[self._position :])
                self._position = len(text)
                break
            out.append(text[self._position : start])
            self._position = start
            match = _MARKER.match(text, start)
            assert match is not None  # "[" matches the pattern's start
            if match.end() == len(text) and not match.group(2):
                break  # "[" or "[12" at the end: wait for the next piece
            if match.group(1) and match.group(2):
                out.append(f"[{self._target(start, match.end(), int(match.group(1)))}]")
                self._position = match.end()
            else:
                out.append("[")
                self._position = start + 1
        return "".join(out)

    def flush(self) -> str:
        """The text held back at the end (an unfinished `[12`), as it came."""
        rest = self._text[self._position :]
        self._position = len(self._text)
        return rest

    def _target(self, start: int, end: int, cited: int) -> int:
        """The passage the citation from `start` to `end` should name: `cited`, unless that passage lacks the
        sentence's words (share below `min_support`) and another passage holds more of them (the first of the best)."""
        if start != self._group_end:
            self._group = set()
        self._group_end = end
        target = cited
        if 1 <= cited <= len(self._passages):
            words = self._sentence_words(start)
            if words:
                scores = [support(words, passage) for passage in self._passages]
                best = max(range(len(scores)), key=lambda i: (scores[i], -i))
                if scores[cited - 1] < self._min_support and scores[best] > scores[cited - 1]:
                    target = best + 1
        if target in self._group:  # [1][2] both better as [3]: the second stays
            target = cited
        if target != cited:
            self.moved.append((cited, target))
        self._group.add(target)
        return target

    def _sentence_words(self, start: int) -> set[str]:
        """Content words of the sentence a citation at `start` closes: the last sentence before it that has some."""
        before = _CITATION.sub(" ", self._text[:start])
        for sentence, _ in reversed(split_sentences(before)):
            words = content_words(sentence)
            if words:
                return words
        return set()


@component
class CitationRepointer:
    """
    Points every `[n]` the model wrote at the passage that actually holds its sentence.

    Small models often cite a neighbouring passage: the answer comes from passage 3, the marker says `[1]`. For each
    valid citation, the sentence before it is compared with the passages by the `ClaimChecker`'s measure (the share
    of its content words a passage contains); when the cited passage holds less than `min_support` of them and
    another holds more, the citation names that one instead. Citations that hold, out-of-range numbers and all other
    text are left as written; the reply's meta gets `citations_moved`, a list of `[cited, now_cited]` pairs.

    Each decision reads only the text before the citation, so a stream can rewrite citations as tokens arrive
    (`stream()`) and send exactly the text `run` returns. Place it right after the generator (before the
    `CitationAttributor` and the `ClaimChecker`), with `documents` fed by the same list the prompt numbered.
    """

    def __init__(self, *, min_support: float = 0.5) -> None:
        """
        :param min_support: A cited passage holding at least this share (0 to 1) of its sentence's content words
            keeps the citation; `ClaimChecker`'s `threshold` is the matching setting (a sentence supported there is
            never re-pointed here when both are equal).
        :raises ValueError: when `min_support` is not a number between 0 and 1.
        """
        if isinstance(min_support, bool) or not isinstance(min_support, int | float) or not 0 <= min_support <= 1:
            raise ValueError(f"min_support must be a number between 0 and 1, got {min_support!r}")
        self.min_support = float(min_support)

    def stream(self, documents: list[Document]) -> CitationStream:
        """A rewriter for one streamed answer over `documents` (the numbered passages the prompt showed)."""
        return CitationStream(documents, self.min_support)

    @component.output_types(replies=list[ChatMessage])
    def run(self, replies: list[ChatMessage], documents: list[Document] | None = None) -> dict[str, list[ChatMessage]]:
        """
        :param replies: The generator's replies (or a refusal, passed through).
        :param documents: The numbered passages the prompt showed, in prompt order.
        :returns: `replies` with their citations pointed at the passages that hold their sentences.
        """
        if not documents:
            return {"replies": replies}
        return {"replies": [self._repoint(reply, documents) for reply in replies]}

    def _repoint(self, reply: ChatMessage, documents: list[Document]) -> ChatMessage:
        text = reply.text or ""
        if not _CITATION.search(text):
            return reply
        rewriter = self.stream(documents)
        answer = rewriter.feed(text) + rewriter.flush()
        if not rewriter.moved:
            return reply
        logger.debug("Citations pointed at other passages: {moved}", moved=rewriter.moved)
        meta = {**reply.meta, "citations_moved": [list(pair) for pair in rewriter.moved]}
        return ChatMessage.from_assistant(answer, meta=meta, name=reply.name)
