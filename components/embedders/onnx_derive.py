"""Derive a faster ONNX file from the packaged sentence-embedding model, locally and once (not a component).

`all-MiniLM-L6-v2-dynamic-int8` is the packaged all-MiniLM-L6-v2 with three changes, each measured in
docs/evaluation.md ("Embedder speed"):

1. its int8-stored weights folded to fp32 by ONNX Runtime's basic graph optimizations (the packaged file keeps them
   as int8 + scale and ONNX Runtime dequantizes them at every load anyway);
2. the export's NaN guards after each attention softmax removed (`Where(IsNaN(p), 0, p)`): the attention mask is
   additive with the finite float32 minimum, so a softmax row is never NaN and the guard is the identity, but it
   cost a quarter of the run time on a (batch, heads, tokens, tokens) tensor per layer;
3. ONNX Runtime's dynamic quantization (`quantize_dynamic`, per-channel int8 weights for every MatMul with a constant
   weight, uint8 activations quantized per batch at run time); the attention products stay fp32.

Steps 1 and 2 change no embedding (cosine 1.0000 against the packaged model); step 3 moves them to a cosine of ~0.994.
"""

from __future__ import annotations

import logging as std_logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import onnxruntime as ort
from haystack import logging

if TYPE_CHECKING:
    from onnx import ModelProto

logger = logging.getLogger(__name__)


class _DropPreprocessingHint(std_logging.Filter):
    """`quantize_dynamic` logs on the root logger that the model was not run through its `quant_pre_process`; the
    derivation does its own pre-processing (step 1), so the hint would only alarm an operator at every warm-up."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing before quantization")


class DerivationError(RuntimeError):
    """The derived model cannot be built or written."""


def derive_dynamic_int8(source: Path, target: Path) -> None:
    """Write the dynamic-int8 derivation of `source` to `target` (temporary file beside it, then a rename, so a
    reader never sees a partial model; two processes deriving at once both write the same bytes)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:  # onnxruntime.quantization needs the onnx package
        raise DerivationError("deriving the dynamic-int8 model needs the onnx package: pip install onnx") from error
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".derive-") as work:
            folded = Path(work) / "folded.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            model = onnx.load(str(folded))
            removed = drop_softmax_nan_guards(model)
            unguarded = Path(work) / "unguarded.onnx"
            onnx.save(model, str(unguarded))
            quantized = Path(work) / "model.onnx"
            hint = _DropPreprocessingHint()
            std_logging.getLogger().addFilter(hint)
            try:
                quantize_dynamic(unguarded, quantized, per_channel=True, weight_type=QuantType.QInt8)
            finally:
                std_logging.getLogger().removeFilter(hint)
            os.replace(quantized, target)
    except OSError as error:
        raise DerivationError(f"cannot write {target}: {error}") from error
    logger.info("Derived {path} ({guards} softmax NaN guards removed)", path=str(target), guards=removed)


def drop_softmax_nan_guards(model: ModelProto) -> int:
    """Remove each `Where(IsNaN(p), 0, p)` whose `p` is a Softmax output, wiring its readers to `p`; return how many.

    Only that exact pattern is touched (the condition an IsNaN of the same softmax output, the replacement a scalar
    zero constant), so a graph without it is returned unchanged.
    """
    from onnx import numpy_helper

    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    graph_outputs = {output.name for output in graph.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    guards = []
    for node in graph.node:
        if node.op_type != "Where" or len(node.input) != 3:
            continue
        condition, replacement, value = node.input
        isnan = producers.get(condition)
        softmax = producers.get(value)
        zero = constants.get(replacement)
        if (
            isnan is None
            or isnan.op_type != "IsNaN"
            or list(isnan.input) != [value]
            or readers.get(condition) != 1
            or softmax is None
            or softmax.op_type != "Softmax"
            or zero is None
            or zero.size != 1
            or float(zero.reshape(())) != 0.0
            or node.output[0] in graph_outputs
        ):
            continue
        guards.append((node, isnan, value))
    for where, isnan, value in guards:
        for reader in graph.node:
            for index, name in enumerate(reader.input):
                if name == where.output[0]:
                    reader.input[index] = value
        graph.node.remove(where)
        graph.node.remove(isnan)
    return len(guards)
