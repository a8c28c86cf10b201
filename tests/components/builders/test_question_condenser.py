"""QuestionCondenser: a follow-up becomes a standalone question; without history no model call and no change."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Pipeline, component
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ChatMessage

from app.pipeline_loader import ALLOWED_MODULES
from app.testing.slow_chat_generator import SlowChatGenerator
from components.builders.question_condenser import QuestionCondenser
from components.converters.isolated_converter import DESERIALIZATION_ALLOWLIST_ENV

HISTORY = [
    ChatMessage.from_user("How do I create an index in SQLite?"),
    ChatMessage.from_assistant("Use CREATE INDEX idx ON t(c) [1]."),
]


@component
class RecordingGenerator:
    """Answers `reply` and keeps the prompts it was sent."""

    def __init__(self, reply: str = "How do I drop an index in SQLite?") -> None:
        self.reply = reply
        self.prompts: list[list[ChatMessage]] = []

    @component.output_types(replies=list[ChatMessage])
    def run(self, messages: list[ChatMessage]) -> dict[str, Any]:
        self.prompts.append(messages)
        return {"replies": [ChatMessage.from_assistant(self.reply)]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chat_generator": object()},
        {"template": ""},
        {"max_turns": 0},
        {"max_history_chars": 10},
        {"max_question_chars": "many"},
        {"fallback": "guess"},
    ],
)
def test_init_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        QuestionCondenser(**{"chat_generator": RecordingGenerator(), **kwargs})


@pytest.mark.parametrize("history", [None, [], [ChatMessage.from_system("be brief")], [ChatMessage.from_user("  ")]])
def test_without_history_the_question_is_unchanged_and_no_model_is_called(history):
    generator = RecordingGenerator()
    condenser = QuestionCondenser(chat_generator=generator)
    assert condenser.run(question="and how do I undo that?", history=history) == {
        "question": "and how do I undo that?",
        "condensed": False,
    }
    assert generator.prompts == []


def test_with_history_the_prompt_holds_the_turns_and_the_reply_is_the_question():
    generator = RecordingGenerator()
    condenser = QuestionCondenser(chat_generator=generator)
    result = condenser.run(question="and how do I remove it?", history=HISTORY)
    assert result == {"question": "How do I drop an index in SQLite?", "condensed": True}
    prompt = generator.prompts[0][-1].text
    assert "user: How do I create an index in SQLite?" in prompt
    assert "assistant: Use CREATE INDEX idx ON t(c) [1]." in prompt
    assert prompt.rstrip().endswith("Last question: and how do I remove it?")


@pytest.mark.parametrize(
    "reply",
    ["", "DROP INDEX idx;", "and how do I remove it?"],  # unusable, an answer, an echo
)
def test_the_last_user_turn_fallback_adds_the_previous_question_to_the_follow_up(reply):
    condenser = QuestionCondenser(chat_generator=RecordingGenerator(reply=reply), fallback="last_user_turn")
    assert condenser.run(question="and how do I remove it?", history=HISTORY) == {
        "question": "and how do I remove it? (follow-up to: How do I create an index in SQLite?)",
        "condensed": False,
    }
    short = QuestionCondenser(
        chat_generator=RecordingGenerator(reply=reply), fallback="last_user_turn", max_question_chars=60
    )
    assert short.run(question="and how do I remove it?", history=HISTORY)["question"] == (
        "and how do I remove it? (follow-up to: How do I create an i)"  # cut to max_question_chars (60)
    )
    assistant_only = [ChatMessage.from_assistant("Use CREATE INDEX.")]
    assert condenser.run(question="and how do I remove it?", history=assistant_only)["question"] == (
        "and how do I remove it?"
    )


def test_history_is_bounded_by_turns_and_characters_newest_first():
    generator = RecordingGenerator()
    condenser = QuestionCondenser(chat_generator=generator, max_turns=2, max_history_chars=100)
    history = [ChatMessage.from_user(f"old question {i}") for i in range(5)] + [
        ChatMessage.from_user("x" * 80),
        ChatMessage.from_assistant("y" * 80),
    ]
    turns = condenser.turns(history)
    assert turns == [{"role": "user", "text": "x" * 20}, {"role": "assistant", "text": "y" * 80}]
    condenser.run(question="and then?", history=history)
    assert "old question" not in generator.prompts[0][-1].text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('Question: "How do I drop an index in SQLite?"', "How do I drop an index in SQLite?"),
        ("\n  How do I drop an index?\nYou use DROP INDEX.", "How do I drop an index?"),
        ("", "and how do I remove it?"),  # empty: the original
        ("...", "and how do I remove it?"),  # no letter or digit
        ("word " * 100, "and how do I remove it?"),  # longer than max_question_chars
        ("DROP INDEX idx;", "and how do I remove it?"),  # an answer, not a question
        ("And how do I remove it?", "and how do I remove it?"),  # the question repeated
    ],
)
def test_reply_is_cleaned_or_falls_back_to_the_original(reply, expected):
    condenser = QuestionCondenser(chat_generator=RecordingGenerator(reply=reply))
    result = condenser.run(question="and how do I remove it?", history=HISTORY)
    assert result["question"] == expected
    assert result["condensed"] == (expected != "and how do I remove it?")


def test_serialization_round_trips_with_the_nested_generator():
    condenser = QuestionCondenser(
        chat_generator=SlowChatGenerator(seconds=0, reply="Q?"),
        template="{% message role='user' %}{{ question }}{{ history }}{% endmessage %}",
        max_turns=3,
    )
    data = component_to_dict(condenser, "condenser")
    assert data["init_parameters"]["chat_generator"]["type"] == "app.testing.slow_chat_generator.SlowChatGenerator"
    restored = component_from_dict(QuestionCondenser, data, "condenser")
    assert isinstance(restored.chat_generator, SlowChatGenerator)
    assert component_to_dict(restored, "condenser") == data


def test_warm_up_warms_the_generator_once():
    calls = []

    class Warming(RecordingGenerator):
        def warm_up(self) -> None:
            calls.append(1)

    condenser = QuestionCondenser(chat_generator=Warming())
    condenser.warm_up()
    condenser.run(question="and then?", history=HISTORY)
    assert calls == [1]


YAML = """
components:
  condenser:
    type: components.builders.question_condenser.QuestionCondenser
    init_parameters:
      max_turns: 2
      chat_generator:
        type: app.testing.slow_chat_generator.SlowChatGenerator
        init_parameters: {seconds: 0, tokens: 1, reply: "How do I drop an index in SQLite?"}
  prompt_builder:
    type: haystack.components.builders.prompt_builder.PromptBuilder
    init_parameters:
      template: "Search: {{ question }}"
      required_variables: [question]
connections:
  - {sender: condenser.question, receiver: prompt_builder.question}
"""


def test_in_a_yaml_pipeline_the_downstream_component_gets_the_standalone_question():
    pipeline = Pipeline.loads(YAML, allowed_modules=[*ALLOWED_MODULES, "app.testing"])
    single = pipeline.run({"condenser": {"question": "How do I create an index?"}})
    assert single["prompt_builder"]["prompt"] == "Search: How do I create an index?"
    follow_up = pipeline.run({"condenser": {"question": "and how do I remove it?", "history": HISTORY}})
    assert follow_up["prompt_builder"]["prompt"] == "Search: How do I drop an index in SQLite?"
    assert Pipeline.loads(pipeline.dumps(), allowed_modules=[*ALLOWED_MODULES, "app.testing"]).to_dict() == (
        pipeline.to_dict()
    )


def test_the_yaml_pipeline_refuses_a_nested_generator_outside_the_allowlist(monkeypatch):
    monkeypatch.delenv(DESERIALIZATION_ALLOWLIST_ENV, raising=False)  # the test plugin allows app.testing
    with pytest.raises(Exception, match="allow"):
        Pipeline.loads(YAML, allowed_modules=ALLOWED_MODULES)


@pytest.mark.integration
def test_in_the_shipped_query_pipeline_the_condenser_shares_the_llm_model(tmp_path, monkeypatch, make_tiny_profile):
    from app.pipeline_loader import load_pipelines

    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    pipelines = load_pipelines(make_tiny_profile(tmp_path / "pipelines"))
    pipelines.query.pipeline.warm_up()
    condenser = pipelines.query.pipeline.get_component("condenser")
    llm = pipelines.query.pipeline.get_component("llm")
    assert condenser.chat_generator is not llm
    assert condenser.chat_generator._model is llm._model  # one model in memory, one lock
    assert condenser.chat_generator._run_lock is llm._run_lock
    result = condenser.run(question="and how do I remove it?", history=HISTORY)
    assert result["question"]  # the tiny model's rewrite or the fallback, never empty
