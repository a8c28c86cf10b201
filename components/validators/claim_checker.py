"""Check every sentence of a generated answer against the passage it cites, without an LLM judge."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from haystack import Document, component, logging
from haystack.dataclasses import ChatMessage

from components.validation import check_int

logger = logging.getLogger(__name__)

Unsupported = Literal["keep", "drop", "refuse"]
MODES: tuple[str, ...] = ("keep", "drop", "refuse")
DEFAULT_REFUSAL = "I don't know. The indexed documents do not contain the answer to this question."

_CITATION = re.compile(r"\[(\d+)\]")
# A sentence ends at . ! ? (then optional closing quotes/brackets and [n] markers) before whitespace, or at a newline.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?:[ \t]*\[\d+\])*(?=\s|$)|\n")
_LIST_NUMBER = re.compile(r"\s*\d{1,3}\.")  # "1. First step." is one sentence
_TRAILING_CITATIONS = re.compile(r"\s*(?:\[\d+\])+\s*$")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|approx|no|fig|ca|resp|incl)|\b[A-Za-z])\.$", re.IGNORECASE)
_TOKEN = re.compile(r"(?:(?<![\w-])--?)?[\w$@][\w.$@/-]*(?:\(\))?")
_STOPWORDS = frozenset(
    """a about above after again against all also an and any are as at be because been before being below between both
    but by can cannot could did do does doing done down during each either else for from further had has have having
    he her here hers him his how however i if in into is it its itself just may me might more most must my no nor not
    now of off on once only or other our ours out over own same shall she should so some such than that the their them
    then there these they this those through to too under until up upon us use used uses using very via was we were
    what when where whether which while who whom whose why will with within without would yes you your yours""".split()
)
_SUFFIXES = ("ing", "ed", "es", "s")


def content_words(text: str) -> set[str]:
    """Lower-cased content words: stop words and tokens shorter than 3 characters out (unless they hold a digit or an
    identifier character), trailing dots off, a light suffix stemming so "saved" matches "save"."""
    words = set()
    for raw in _TOKEN.findall(_CITATION.sub(" ", text)):
        token = raw.lower().rstrip(".-/")
        if not token or token in _STOPWORDS:
            continue
        plain = token.isalpha()
        if plain and len(token) < 3:
            continue
        words.add(_stem(token) if plain else token)
    return words


def support(words: set[str], passage: set[str]) -> float:
    """The share of a sentence's content `words` found in a passage's (`content_words` of both): the claim measure,
    0 for a sentence without content words."""
    return len(words & passage) / len(words) if words else 0.0


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            return stem[:-1] if suffix in ("ing", "ed") and len(stem) > 3 and stem[-1] == stem[-2] else stem
    return word.removesuffix("e") if len(word) >= 4 else word


@dataclass
class Claim:
    """One checked sentence: `sources` are the passage numbers it was checked against (those it cites, else the best
    one), `score` the share of its content words found there, `supported` whether the score reaches the threshold."""

    text: str
    sources: list[int]
    supported: bool
    score: float


def split_sentences(text: str) -> list[tuple[str, str]]:
    """`text` as (sentence, separator after it) pairs; joining them all gives `text` back exactly."""
    parts: list[tuple[str, str]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() < start:  # the line break after a sentence end: already in its separator
            continue
        end = match.start() if match.group() == "\n" else match.end()
        segment = text[start : match.start() + 1]
        if match.group() != "\n" and (_ABBREVIATION.search(segment) or _LIST_NUMBER.fullmatch(segment)):
            continue
        gap = re.match(r"\s*", text[end:])
        stop = end + (gap.end() if gap else 0)
        parts.append((text[start:end], text[end:stop]))
        start = stop
    if start < len(text):
        parts.append((text[start:], ""))
    kept = [(s, sep) for s, sep in parts if s.strip() or sep]
    return kept or [(text, "")]


@component
class ClaimChecker:
    """
    Splits an answer into sentences and checks each against the passage(s) it cites `[n]` (the best passage when it
    cites none), without an LLM: a sentence's score is the share of its content words (stop words and very short
    words out; numbers and identifiers such as `q()` or `--force` kept) found in those passages.

    The reply's meta gets `claims`: a list of `{text, sources, supported, score}`, one per sentence with content
    words, in answer order. What happens to unsupported sentences (`score < threshold`) is set by `unsupported`:

    - `keep`: the answer is unchanged, the claims only annotate it;
    - `drop`: unsupported sentences are removed from the answer (and from `claims`; `claims_dropped` in the meta
      counts them); when none is left the answer becomes `refusal`;
    - `refuse`: the answer becomes `refusal` when no sentence is supported, or when the supported share of its
      sentences is below `min_supported_share`.

    Refusals (replies starting with `refusal_prefix`) are never checked or changed. Place it after the
    `CitationAttributor`, with `documents` fed by the same list the prompt numbered.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        unsupported: Unsupported = "keep",
        refusal: str = DEFAULT_REFUSAL,
        refusal_prefix: str = "I don't know",
        min_words: int = 1,
        min_supported_share: float = 0.0,
    ) -> None:
        """
        :param threshold: Share of a sentence's content words (0 to 1) the checked passages must contain.
        :param unsupported: `keep`, `drop` or `refuse` (see the class docstring).
        :param refusal: The answer given instead, in `drop` mode when nothing is left and in `refuse` mode.
        :param refusal_prefix: Replies starting with this text are refusals (left alone); `refusal` must start with it.
        :param min_words: Sentences with fewer content words are no claim (e.g. "Yes."): never listed or dropped.
        :param min_supported_share: In `refuse` mode, also refuse when fewer than this share (0 to 1) of the claims
            are supported (0: only when none is).
        :raises ValueError: on an invalid argument.
        """
        for name, value in (("threshold", threshold), ("min_supported_share", min_supported_share)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
        if unsupported not in MODES:
            raise ValueError(f"unsupported must be one of {', '.join(MODES)}, got {unsupported!r}")
        if not isinstance(refusal_prefix, str) or not refusal_prefix.strip():
            raise ValueError(f"refusal_prefix must be a non-empty string, got {refusal_prefix!r}")
        if not isinstance(refusal, str) or not refusal.lower().startswith(refusal_prefix.lower()):
            raise ValueError(f"refusal must be a string starting with {refusal_prefix!r}, got {refusal!r}")
        self.threshold = float(threshold)
        self.unsupported: Unsupported = unsupported
        self.refusal = refusal
        self.refusal_prefix = refusal_prefix
        self.min_words = check_int(min_words, "min_words", minimum=1)
        self.min_supported_share = float(min_supported_share)

    @property
    def rewrites_answers(self) -> bool:
        """True when the checker may change an answer's text (drop and refuse modes), so a stream must wait for it."""
        return self.unsupported != "keep"

    @component.output_types(replies=list[ChatMessage])
    def run(self, replies: list[ChatMessage], documents: list[Document] | None = None) -> dict[str, list[ChatMessage]]:
        """
        :param replies: The replies, after citation attribution (or a refusal).
        :param documents: The numbered passages the prompt showed, in prompt order.
        :returns: `replies` with `claims` in their meta, unsupported sentences handled as `unsupported` says.
        """
        return {"replies": [self._check_reply(reply, documents or []) for reply in replies]}

    def check(self, sentence: str, documents: list[Document]) -> Claim:
        """Check one sentence against the passages it cites (valid `[n]` numbers), else against the best passage."""
        words = content_words(sentence)
        cited = sorted({int(n) for n in _CITATION.findall(sentence) if 1 <= int(n) <= len(documents)})
        text = sentence.strip()
        if not words or not documents:
            return Claim(text=text, sources=cited, supported=False, score=0.0)
        passages = [content_words(doc.content or "") for doc in documents]
        if cited:
            found = set().union(*(passages[n - 1] for n in cited))
            score = support(words, found)
            sources = cited
        else:
            score, best = max((support(words, p), -i) for i, p in enumerate(passages))
            sources = [1 - best]
        score = round(score, 3)  # supported as the reported score says
        return Claim(text=text, sources=sources, supported=score >= self.threshold, score=score)

    def _check_reply(self, reply: ChatMessage, documents: list[Document]) -> ChatMessage:
        text = reply.text or ""
        if not text.strip() or text.strip().lower().startswith(self.refusal_prefix.lower()):
            return reply
        inferred = self.rewrites_answers and reply.meta.get("citations") == "inferred"
        body = _TRAILING_CITATIONS.sub("", text) if inferred else text  # an inferred [n] is for the whole answer
        kept: list[str] = []
        claims: list[Claim] = []
        dropped = 0
        for sentence, separator in split_sentences(body):
            if len(content_words(sentence)) < self.min_words:
                kept.append(sentence + separator)
                continue
            claim = self.check(sentence, documents)
            if self.unsupported == "drop" and not claim.supported:
                dropped += 1
                continue
            claims.append(claim)
            kept.append(sentence + separator)
        meta: dict[str, Any] = {**reply.meta, "claims": [asdict(c) for c in claims]}
        if not self.rewrites_answers:
            return ChatMessage.from_assistant(text, meta=meta, name=reply.name)
        supported = sum(c.supported for c in claims)
        too_few = claims and (not supported or supported / len(claims) < self.min_supported_share)
        if (self.unsupported == "refuse" and too_few) or (dropped and not claims):
            logger.debug("No supported claim in the answer: refused ({dropped} dropped)", dropped=dropped)
            meta = {**reply.meta, "claims": [], "claims_dropped": dropped}
            meta.pop("citations", None)
            return ChatMessage.from_assistant(self.refusal, meta=meta, name=reply.name)
        if not dropped:
            return ChatMessage.from_assistant(text, meta=meta, name=reply.name)
        answer = "".join(kept).strip()
        if inferred:  # cite what the kept sentences were checked against
            cited = sorted({n for claim in claims if claim.supported for n in claim.sources})
            answer = f"{answer} {''.join(f'[{n}]' for n in cited)}".rstrip()
        meta["claims_dropped"] = dropped
        return ChatMessage.from_assistant(answer, meta=meta, name=reply.name)
