import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from components.embedders.onnx_backend import DEFAULT_MODEL, resolve_model_path, resolve_tokenizer_path
from components.embedders.onnx_derive import DerivationError, derive_dynamic_int8, drop_softmax_nan_guards


def _guarded_softmax_graph(*, replacement: float = 0.0) -> onnx.ModelProto:
    """y = Where(IsNaN(Softmax(x)), c, Softmax(x)) @ w: the export's pattern in small."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["p"], axis=-1),
        helper.make_node("IsNaN", ["p"], ["nan"]),
        helper.make_node("Where", ["nan", "c", "p"], ["guarded"]),
        helper.make_node("MatMul", ["guarded", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "guarded",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        initializer=[
            numpy_helper.from_array(np.array(replacement, dtype=np.float32), "c"),
            numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_drop_softmax_nan_guards_rewires_readers_to_the_softmax():
    model = _guarded_softmax_graph()
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], dtype=np.float32)
    before = _run(model, x)

    assert drop_softmax_nan_guards(model) == 1

    assert [node.op_type for node in model.graph.node] == ["Softmax", "MatMul"]
    assert list(model.graph.node[1].input) == ["p", "w"]
    onnx.checker.check_model(model)
    np.testing.assert_allclose(_run(model, x), before)


def test_drop_softmax_nan_guards_leaves_other_where_nodes_alone():
    model = _guarded_softmax_graph(replacement=1.0)  # not a zero replacement: not the guard
    assert drop_softmax_nan_guards(model) == 0
    assert [node.op_type for node in model.graph.node] == ["Softmax", "IsNaN", "Where", "MatMul"]


def test_derived_model_drops_the_guards_of_all_six_layers(tmp_path):
    target = tmp_path / "derived.onnx"
    derive_dynamic_int8(resolve_model_path(DEFAULT_MODEL), target)

    ops = [node.op_type for node in onnx.load(str(target)).graph.node]
    assert "IsNaN" not in ops
    assert ops.count("Softmax") == 6
    assert [p.name for p in tmp_path.iterdir()] == ["derived.onnx"], "nothing but the model is left behind"


def test_removing_the_guards_changes_no_embedding(tmp_path):
    """The fp32 packaged graph with and without its guards, on a padded batch (padding is what a guard is for)."""
    from tokenizers import Tokenizer

    folded = tmp_path / "folded.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(resolve_model_path(DEFAULT_MODEL)), options, providers=["CPUExecutionProvider"])
    guarded = onnx.load(str(folded))
    unguarded = onnx.load(str(folded))
    assert drop_softmax_nan_guards(unguarded) == 6

    tokenizer = Tokenizer.from_file(str(resolve_tokenizer_path(DEFAULT_MODEL)))
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(["short", "a much longer sentence about apt and dpkg in Debian " * 5])
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }
    feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
    outputs = []
    for model in (guarded, unguarded):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, feeds)[0])
    mask = feeds["attention_mask"][:, :, None].astype(bool)
    assert not np.isnan(outputs[1]).any()
    np.testing.assert_allclose(np.where(mask, outputs[1], 0), np.where(mask, outputs[0], 0), atol=1e-5)


def test_unwritable_target_is_a_derivation_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DerivationError, match="cannot write"):
        derive_dynamic_int8(resolve_model_path(DEFAULT_MODEL), blocker / "models" / "derived.onnx")
