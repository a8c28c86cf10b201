"""`EnvWeaviateDocumentStore`: weaviate-haystack's `WeaviateDocumentStore` whose `url` may name an environment variable.

The `weaviate` profile reads `url: "${WEAVIATE_URL:-http://localhost:8080}"`, so one YAML serves a laptop and a
cluster (`WEAVIATE_URL=http://weaviate:8080`), with the app and with Hayhooks alike. The reference is resolved when the
store is created and kept as written when it is serialized; everything else is `WeaviateDocumentStore`'s. Its
retrievers are `components.retrievers.weaviate` (upstream's `from_dict` would rebuild a plain store).
"""

from __future__ import annotations

from typing import Any

from haystack_integrations.document_stores.weaviate import WeaviateDocumentStore

from components.env_values import resolve_text


class EnvWeaviateDocumentStore(WeaviateDocumentStore):
    """A `WeaviateDocumentStore` whose `url` is a URL or a `${VAR}` / `${VAR:-default}` reference.

    ```python
    store = EnvWeaviateDocumentStore(url="${WEAVIATE_URL:-http://localhost:8080}")
    ```
    """

    def __init__(self, *, url: str | None = None, **kwargs: Any) -> None:
        """
        Create the store; every parameter is `WeaviateDocumentStore`'s.

        :param url: The server's URL, or a reference to the environment variable holding it (`${WEAVIATE_URL}`,
            `${WEAVIATE_URL:-http://localhost:8080}`); None for embedded Weaviate, as in `WeaviateDocumentStore`.
        :raises ValueError: The reference names an unset variable and has no default.
        """
        self.url_setting = url
        WeaviateDocumentStore.__init__(self, url=resolve_text(url, "url") if url is not None else None, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """`WeaviateDocumentStore.to_dict`, with `url` as it was given (a reference stays one)."""
        data = WeaviateDocumentStore.to_dict(self)
        data["init_parameters"]["url"] = self.url_setting
        return data
