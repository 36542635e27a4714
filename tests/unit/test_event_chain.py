"""The hash-chain link: every stored field counts, and fields cannot trade bytes unnoticed."""

from __future__ import annotations

from uuid import UUID

from infra.event_chain import GENESIS, ChainHead, chain_link, extend

ID = UUID("6f1c7c1e-4a8e-4b43-9a55-0d8f8b3f2a10")


def test_moving_bytes_between_fields_changes_the_link():
    assert chain_link(GENESIS, 1, ID, 1, "a:B", b"{}") != chain_link(GENESIS, 1, ID, 1, "a:", b"B{}")
    assert chain_link(GENESIS, 12, ID, 3, "t", b"s") != chain_link(GENESIS, 1, ID, 23, "t", b"s")


def test_every_field_and_the_previous_link_count():
    base = chain_link(GENESIS, 5, ID, 2, "t", b"state")
    assert len(base) == 32
    assert len({
        base,
        chain_link(b"\x01" * 32, 5, ID, 2, "t", b"state"),
        chain_link(GENESIS, 6, ID, 2, "t", b"state"),
        chain_link(GENESIS, 5, UUID(int=ID.int + 1), 2, "t", b"state"),
        chain_link(GENESIS, 5, ID, 3, "t", b"state"),
        chain_link(GENESIS, 5, ID, 2, "u", b"state"),
        chain_link(GENESIS, 5, ID, 2, "t", b"statE"),
    }) == 7


def test_an_id_links_the_same_stored_as_text_or_as_a_uuid():
    assert chain_link(GENESIS, 1, ID.hex, 1, "t", b"s") == chain_link(GENESIS, 1, ID, 1, "t", b"s")


def test_links_follow_the_positions_given_even_with_gaps():
    rows = extend(ChainHead(None, GENESIS), [(1, ID, 1, "t", b"a"), (4, ID, 2, "t", b"b")])
    assert [(r.position, r.previous_position) for r in rows] == [(1, None), (4, 1)]
    assert rows[1].link == chain_link(rows[0].link, 4, ID, 2, "t", b"b")
