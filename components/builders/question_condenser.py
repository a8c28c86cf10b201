"""Rewrite a follow-up question into a standalone one with the conversation's history, before retrieval."""

from __future__ import annotations

import re
from typing import Any

from haystack import component, default_from_dict, default_to_dict, logging
from haystack.components.builders.chat_prompt_builder import ChatPromptBuilder
from haystack.core.serialization import component_to_dict
from haystack.dataclasses import ChatMessage, ChatRole
from haystack.utils import deserialize_chatgenerator_inplace

from components.validation import check_int

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = """\
{% message role="system" %}
You rewrite the user's last question so that it can be understood without the conversation.
Replace words such as it, that, this, they, them, one or "the same" by the thing they refer to, taken from the
conversation. Keep commands, file names, package names and numbers exactly as written. Do not answer the question.
Reply with one question ending with a question mark, nothing else.
{% endmessage %}
{% message role="user" %}
Conversation:
user: How do I create an index on a column in SQLite?
assistant: Use CREATE INDEX, for example CREATE INDEX idx ON t(c).
Last question: and how do I remove it again?
{% endmessage %}
{% message role="assistant" %}
How do I remove an index in SQLite?
{% endmessage %}
{% message role="user" %}
Conversation:
user: Which compression formats does tar support?
assistant: gzip, bzip2 and xz [1].
Last question: Which of them is the fastest?
{% endmessage %}
{% message role="assistant" %}
Which compression format supported by tar is the fastest?
{% endmessage %}
{% message role="user" %}
Conversation:
{% for turn in history %}{{ turn.role }}: {{ turn.text }}
{% endfor %}Last question: {{ question }}
{% endmessage %}
"""

_PREFIX = re.compile(r"^(?:(?:standalone|rewritten|last)\s+)?question\s*:\s*", re.IGNORECASE)
FALLBACKS = ("question", "last_user_turn")
_FOLLOW_UP = " (follow-up to: {last})"
_QUOTES = "\"'` \u201c\u201d\u2018\u2019"


@component
class QuestionCondenser:
    """
    Turns a follow-up question ("and how do I undo that?") into a standalone question with the conversation's
    history, so retrieval, gates and the prompt all work on a question that names what it is about.

    - No history (None, empty, or no user/assistant message with text): the question is returned unchanged and the
      chat generator is not called, so a single-turn query costs nothing and gives the same results as without it.
    - With history: the last `max_turns` user/assistant messages, at most `max_history_chars` characters in all
      (newest first kept; the oldest kept message is cut at the budget), are rendered with `template` (a
      `ChatPromptBuilder` template with `{% message %}` blocks, variables `history`, a list of `{role, text}`, and
      `question`) and sent to `chat_generator`.
    - The reply's first non-empty line, without quotes or a "Question:" prefix, is the standalone question, unless it
      is empty, holds no letter or digit, is longer than `max_question_chars`, or is an answer rather than a question
      (the user's question has a "?" and the reply none): a small model that answers instead of rewriting, or
      rambles, never replaces the user's question. Then, and when the reply repeats the question unchanged (a small
      model often does), `fallback` decides (`condensed: False`): `"question"` keeps the original question;
      `"last_user_turn"` adds the previous user message after it ("Can it write to another file? (follow-up to: What
      does VACUUM do?)"), cut to `max_question_chars`, so retrieval still sees what the follow-up is about and the
      answering model reads the follow-up first.

    `chat_generator` is any Haystack chat generator, serialized as a nested component (as `QueryExpander` and
    `LLMMetadataExtractor` do). In the shipped YAML it is the same model as the pipeline's `llm`, with a small
    `max_tokens`; `PackagedLlamaCppChatGenerator` loads one llama.cpp model per model file and parameters per process,
    so the condenser and the answering `llm` share the weights, the context and the lock.
    """

    def __init__(
        self,
        *,
        chat_generator: Any,
        template: str = DEFAULT_TEMPLATE,
        max_turns: int = 4,
        max_history_chars: int = 2000,
        max_question_chars: int = 400,
        fallback: str = "question",
    ) -> None:
        """
        :param chat_generator: A chat generator component (`run(messages=...)` returning `replies`).
        :param template: A `ChatPromptBuilder` template; variables `history` (list of `{role, text}`) and `question`.
        :param max_turns: The most recent user/assistant messages shown to the model.
        :param max_history_chars: Characters of history shown to the model, at most.
        :param max_question_chars: A rewritten question longer than this is discarded for the fallback.
        :param fallback: `"question"` (the question as asked) or `"last_user_turn"` (the previous user message and the
            question), used when the reply is unusable or repeats the question.
        :raises ValueError: on an invalid argument.
        """
        if not callable(getattr(chat_generator, "run", None)):
            raise ValueError("chat_generator must be a chat generator component (with a run() method)")
        if not isinstance(template, str) or not template.strip():
            raise ValueError("template must be a non-empty Jinja template string")
        self.chat_generator = chat_generator
        self.template = template
        self.max_turns = check_int(max_turns, "max_turns", minimum=1, maximum=100)
        self.max_history_chars = check_int(max_history_chars, "max_history_chars", minimum=100)
        self.max_question_chars = check_int(max_question_chars, "max_question_chars", minimum=10)
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        self.fallback = fallback
        self._builder = ChatPromptBuilder(template=template, required_variables=["history", "question"])
        self._warmed = False

    def warm_up(self) -> None:
        """Warm up the chat generator (loads a local model once)."""
        if not self._warmed and hasattr(self.chat_generator, "warm_up"):
            self.chat_generator.warm_up()
        self._warmed = True

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component, the chat generator as a nested component."""
        return default_to_dict(
            self,
            chat_generator=component_to_dict(self.chat_generator, name="chat_generator"),
            template=self.template,
            max_turns=self.max_turns,
            max_history_chars=self.max_history_chars,
            max_question_chars=self.max_question_chars,
            fallback=self.fallback,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuestionCondenser:
        """Deserialize the component and its nested chat generator (its type passes the deserialization allowlist)."""
        data = {**data, "init_parameters": dict(data["init_parameters"])}  # the caller's dict is left as it was
        deserialize_chatgenerator_inplace(data["init_parameters"], key="chat_generator")
        return default_from_dict(cls, data)

    def turns(self, history: list[ChatMessage]) -> list[dict[str, str]]:
        """The user/assistant messages shown to the model, oldest first, within `max_turns` and `max_history_chars`."""
        messages = [m for m in history if m.role in (ChatRole.USER, ChatRole.ASSISTANT) and m.text and m.text.strip()][
            -self.max_turns :
        ]
        kept: list[dict[str, str]] = []
        budget = self.max_history_chars
        for message in reversed(messages):
            if budget <= 0:
                break
            text = " ".join((message.text or "").split())[:budget]
            budget -= len(text)
            kept.append({"role": message.role.value, "text": text})
        return kept[::-1]

    @component.output_types(question=str, condensed=bool)
    def run(self, question: str, history: list[ChatMessage] | None = None) -> dict[str, Any]:
        """
        Rewrite `question` with `history` (the earlier turns, oldest first, without the question itself).

        :returns: `question`, the standalone question (the original one without history or on a fallback), and
            `condensed`, whether the model's rewrite is used.
        """
        turns = self.turns(history or [])
        if not turns:
            return {"question": question, "condensed": False}
        self.warm_up()
        prompt = self._builder.run(history=turns, question=question)["prompt"]
        replies = self.chat_generator.run(messages=prompt)["replies"]
        rewritten = self.clean(replies[0].text if replies else None, question)
        if rewritten is None or " ".join(rewritten.lower().split()) == " ".join(question.lower().split()):
            logger.info(
                "Question not condensed: the model's reply was unusable or repeated the question; fallback {fallback}",
                fallback=self.fallback,
                turns=len(turns),
            )
            return {"question": self._fallback(question, turns), "condensed": False}
        return {"question": rewritten, "condensed": True}

    def _fallback(self, question: str, turns: list[dict[str, str]]) -> str:
        last = next((t["text"] for t in reversed(turns) if t["role"] == "user"), None)
        if self.fallback == "question" or last is None:
            return question
        room = self.max_question_chars - len(question) - len(_FOLLOW_UP.format(last=""))
        if room < 10:
            return question
        return question + _FOLLOW_UP.format(last=last[:room].rstrip())

    def clean(self, reply: str | None, question: str = "") -> str | None:
        """The standalone question in a model reply, or None when the reply is not usable (empty, no letter or digit,
        too long, or an answer: `question` has a "?" and the reply none)."""
        line = next((line.strip() for line in (reply or "").splitlines() if line.strip()), "")
        line = _PREFIX.sub("", line).strip(_QUOTES)
        if not line or not any(ch.isalnum() for ch in line) or len(line) > self.max_question_chars:
            return None
        if "?" in question and "?" not in line:
            return None
        return line
