"""Deserialization shared by the retrievers: their document store goes through that store's own `from_dict`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from haystack.core.errors import DeserializationError
from haystack.document_stores.types import FilterPolicy


def with_deserialized_store(data: dict[str, Any], store_from_dict: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """
    Return a copy of a retriever's `to_dict` output ready for `default_from_dict` (`data` itself is not changed).

    `init_parameters.document_store` is deserialized with `store_from_dict` (as Haystack's own retrievers do with
    their store's `from_dict`, which refuses any other `type`) and `filter_policy` is parsed.

    :raises DeserializationError: if the document store is missing or of another type.
    """
    init_params = dict(data.get("init_parameters", {}))
    store_data = init_params.get("document_store")
    if not isinstance(store_data, dict):
        raise DeserializationError("Missing 'document_store' in serialization data")
    init_params["document_store"] = store_from_dict(store_data)
    if isinstance(init_params.get("filter_policy"), str):
        init_params["filter_policy"] = FilterPolicy.from_str(init_params["filter_policy"])
    return {**data, "init_parameters": init_params}
