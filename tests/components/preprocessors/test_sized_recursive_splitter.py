import pytest
from haystack import Document, Pipeline

from components.preprocessors.sized_recursive_splitter import SizedRecursiveSplitter

TEXT = " ".join(f"word{n}" for n in range(400))  # 3090 characters


def _lengths(result):
    return [len(d.content) for d in result["documents"]]


def test_the_init_size_is_the_default_and_a_run_may_override_it():
    splitter = SizedRecursiveSplitter(split_length=1000, split_overlap=0, separators=[" "])
    splitter.warm_up()
    default = _lengths(splitter.run([Document(content=TEXT)]))
    assert max(default) <= 1000 and len(default) == 4
    small = _lengths(splitter.run([Document(content=TEXT)], split_length=400, split_overlap=0))
    assert max(small) <= 400 and len(small) >= 8
    assert _lengths(splitter.run([Document(content=TEXT)])) == default  # the override was for that run only


def test_it_is_a_pipeline_input_and_round_trips():
    pipeline = Pipeline()
    pipeline.add_component("splitter", SizedRecursiveSplitter(split_length=1000, split_overlap=100, separators=[" "]))
    restored = Pipeline.loads(pipeline.dumps(), allowed_modules=["components"])
    result = restored.run({"splitter": {"documents": [Document(content=TEXT)], "split_length": 300}})
    assert max(_lengths(result["splitter"])) <= 300


@pytest.mark.parametrize("kwargs", [{"split_length": 0}, {"split_length": 10, "split_overlap": 10}, {"max_sizes": 0}])
def test_bad_init_values_are_refused(kwargs):
    with pytest.raises(ValueError):
        SizedRecursiveSplitter(**kwargs)


def test_a_bad_run_overlap_is_refused():
    with pytest.raises(ValueError):
        SizedRecursiveSplitter(separators=[" "]).run([Document(content=TEXT)], split_length=100, split_overlap=100)
