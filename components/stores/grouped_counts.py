"""`grouped_counts`: counts of every group of one meta field in one store query, offered by both stores.

Haystack's extended DocumentStore API counts one filter at a time (`count_documents_by_filter`,
`count_unique_metadata_by_filter`), so counting N groups (collections, say) costs N queries. A store that also
implements `GroupedCounts` answers for every group at once:

```python
store.grouped_counts("meta.collection", ["meta.document_id"])
# {"manuals": {"count": 120, "document_id": 4}, "faq": {"count": 9, "document_id": 1}}
```
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

#: The key of a group's number of documents in `grouped_counts` results (so no unique field may be named so).
COUNT_KEY = "count"


@runtime_checkable
class GroupedCounts(Protocol):
    """A document store that counts the groups of one meta field in a single query."""

    def grouped_counts(self, group_field: str, unique_fields: list[str]) -> dict[Any, dict[str, int]]:
        """
        Count the documents of every value of `group_field`, and the distinct values of `unique_fields` in each.

        :param group_field: The meta field to group by, in Haystack's `meta.x` form (`x` alone is accepted too).
        :param unique_fields: Meta fields whose distinct non-null values are counted per group (`meta.x` or `x`).
        :returns: `{group value: {"count": documents, "<x>": distinct values of meta.x, ...}}`, keyed by the group's
            value (for string fields, the string); documents without the group field (or with `None` in it) are in
            no group. An empty store gives `{}`.
        :raises ValueError: if a field name is invalid or a unique field is named `count`.
        """
        ...


def meta_keys(group_field: str, unique_fields: list[str]) -> tuple[str, list[str]]:
    """
    The meta keys (without `meta.`) of a `grouped_counts` call, checked.

    :raises ValueError: on an empty or non-string name, a unique field named `count`, or a repeated unique field.
    """
    names = [group_field, *unique_fields] if isinstance(unique_fields, list) else None
    if names is None or any(not isinstance(n, str) or not n.removeprefix("meta.") for n in names):
        raise ValueError("grouped_counts needs a meta field name to group by and a list of meta field names")
    group, *unique = (n.removeprefix("meta.") for n in names)
    if COUNT_KEY in unique:
        raise ValueError(f"grouped_counts cannot count a unique field named {COUNT_KEY!r}: the key of the group size")
    if len(set(unique)) != len(unique):
        raise ValueError(f"grouped_counts: repeated unique fields in {unique_fields}")
    return group, unique
