"""The sources table on SQLite and PostgreSQL: the listing's scope and access filter (counted in the query), edits of
a source's access, and deletion of everything a source recorded."""

from __future__ import annotations

from app.sync.models import SourceKind


def test_listing_filters_by_collection_scope_and_the_principals_that_read_the_documents(rig, root):
    make = lambda collection, access: rig.sources.create(  # noqa: E731
        collection=collection, kind=SourceKind.FOLDER, location=str(root / "docs"), access=access
    )
    public = make("a", None)
    hr = make("a", ["group:hr"])
    eng = make("b", ["group:eng", "user:bob"])

    def ids(**kwargs) -> tuple[list[str], int]:
        sources, total = rig.sources.sources(**kwargs)
        return [s.id for s in sources], total

    assert ids() == ([public.id, hr.id, eng.id], 3)
    assert ids(principals=frozenset()) == ([public.id], 1)
    assert ids(principals=frozenset({"user:bob"})) == ([public.id, eng.id], 2)
    assert ids(principals=frozenset({"group:hr"}), within=frozenset({"a"})) == ([public.id, hr.id], 2)
    assert ids(principals=frozenset({"group:hr"}), collection="b") == ([], 0)
    assert ids(within=frozenset()) == ([], 0)
    assert ids(offset=1, limit=1) == ([hr.id], 3)

    rig.sources.update(hr.id, access=None)  # now public
    assert ids(principals=frozenset()) == ([public.id, hr.id], 2)
    rig.sources.update(public.id, access=["user:ann"])
    assert ids(principals=frozenset()) == ([hr.id], 1)
    assert rig.sources.get(public.id).access == ["user:ann"]
    rig.sources.delete(eng.id)
    assert ids(principals=frozenset({"user:bob"})) == ([hr.id], 1)
