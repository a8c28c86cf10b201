"""A fault-injecting text converter for tests and drills of the parse time limit (test support, never shipped YAML).

It reads UTF-8 text like Haystack's `TextFileToDocument`, except for files whose bytes start with `trigger`:
those make it sleep, spin the CPU, or exit the process, as a stuck or crashing parser would. Wrapped in
`IsolatedConverter` it shows that a stuck parser costs one file, not the server.

Pipelines (and `IsolatedConverter`) accept its type, `app.testing.fault_injecting_converter.FaultInjectingConverter`,
only while Haystack's HAYSTACK_DESERIALIZATION_ALLOWLIST names `app.testing`, as the test plugin
(`app.testing.plugin`) does for a test session.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal, get_args

from haystack import Document, component
from haystack.dataclasses import ByteStream

from components.converters.errors import ConversionError
from components.converters.sources import convert_sources

Fault = Literal["sleep", "spin", "crash"]


@component
class FaultInjectingConverter:
    """Text converter that sleeps, spins or crashes on files starting with `trigger`; see the module docstring."""

    def __init__(self, *, trigger: str = "#FAULT", fault: Fault = "sleep", seconds: float = 3600) -> None:
        """
        Create the converter.

        :param trigger: files whose text starts with this string trigger the fault.
        :param fault: "sleep" (idle), "spin" (busy CPU loop) or "crash" (the process exits at once with code 70).
        :param seconds: how long "sleep" and "spin" last.
        :raises ValueError: on an invalid argument.
        """
        if not isinstance(trigger, str) or not trigger:
            raise ValueError(f"trigger must be a non-empty string, got {trigger!r}")
        if fault not in get_args(Fault):
            raise ValueError(f"fault must be one of {get_args(Fault)}, got {fault!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        self.trigger = trigger
        self.fault = fault
        self.seconds = seconds

    @component.output_types(documents=list[Document])
    def run(
        self,
        sources: list[str | Path | ByteStream],
        meta: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, list[Document]]:
        """Convert text files, injecting the fault on triggering ones."""
        return {"documents": convert_sources(sources, meta, self._convert, raise_on_failure=True)}

    def _convert(self, bytestream: ByteStream, metadata: dict[str, Any], name: str) -> list[Document]:
        try:
            text = bytestream.data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConversionError(f"cannot decode {name} as UTF-8: {error}") from error
        if text.startswith(self.trigger):
            self._inject()
        return [Document(content=text, meta={**bytestream.meta, **metadata})]

    def _inject(self) -> None:
        if self.fault == "crash":
            os._exit(70)
        deadline = time.monotonic() + self.seconds
        if self.fault == "sleep":
            time.sleep(self.seconds)
            return
        while time.monotonic() < deadline:  # spin
            pass
