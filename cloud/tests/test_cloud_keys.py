"""API keys: shown once, stored as SHA-256 of the secret, refused when wrong or revoked."""

from __future__ import annotations

import hashlib

import pytest

from cloud.tests.test_cloud_api_harness import api_client, auth, build_world, count
from shelflink.cloud.api_keys import (
    UnknownDealer,
    authenticate,
    issue_key,
    list_keys,
    revoke_key,
    split_key,
)
from shelflink.cloud.database import Connection


async def test_the_secret_is_not_stored_only_its_sha256(db: Connection) -> None:
    await build_world(db)
    issued = await issue_key(db, "north", label="till app")
    parts = split_key(issued.api_key)
    assert parts is not None
    key_id, secret = parts
    assert key_id == issued.key_id
    cur = await db.execute("SELECT api_keys::text FROM api_keys")
    stored_rows = " ".join(row[0] for row in await cur.fetchall())
    assert secret not in stored_rows
    assert issued.api_key not in stored_rows
    assert (
        await count(
            db,
            "SELECT count(*) FROM api_keys WHERE key_id = %s AND secret_sha256 = %s",
            key_id,
            hashlib.sha256(secret.encode()).digest(),
        )
        == 1
    )


async def test_each_key_is_new_and_only_the_right_secret_authenticates(db: Connection) -> None:
    await build_world(db)
    first = await issue_key(db, "north")
    second = await issue_key(db, "north")
    assert first.api_key != second.api_key and first.key_id != second.key_id
    holder = await authenticate(db, first.api_key)
    assert holder is not None and holder.dealer_id == "north" and not holder.is_operator
    key_id, secret = first.api_key.removeprefix("slk_").split("_", 1)
    wrong = f"slk_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    for offered in (wrong, "slk_nosuchkeyid_" + secret, "Bearer " + first.api_key, "", "slk_"):
        assert await authenticate(db, offered) is None, offered


async def test_operator_keys_belong_to_no_dealer(db: Connection) -> None:
    await build_world(db)
    issued = await issue_key(db, None)
    holder = await authenticate(db, issued.api_key)
    assert holder is not None and holder.is_operator and holder.dealer_id is None


async def test_a_key_for_an_unknown_dealer_is_refused(db: Connection) -> None:
    with pytest.raises(UnknownDealer):
        await issue_key(db, "nobody")
    assert await count(db, "SELECT count(*) FROM api_keys") == 0


async def test_a_revoked_key_is_refused_by_the_api(
    db: Connection, migrated_database_url: str
) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        assert (
            await client.get("/api/v1/stores", headers=auth(world.north_key))
        ).status_code == 200
        assert await revoke_key(db, world.north_key_id, dealer_id="south") is False
        assert await revoke_key(db, world.north_key_id, dealer_id="north") is True
        refused = await client.get("/api/v1/stores", headers=auth(world.north_key))
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert await authenticate(db, world.north_key) is None
    records = {k.key_id: k for k in await list_keys(db, dealer_id="north")}
    assert records[world.north_key_id].revoked_at is not None


async def test_both_headers_carry_a_key(db: Connection, migrated_database_url: str) -> None:
    world = await build_world(db)
    async with api_client(migrated_database_url) as (client, _):
        by_header = await client.get("/api/v1/stores", headers={"X-API-Key": world.south_key})
        assert [s["store_id"] for s in by_header.json()["items"]] == ["s0002"]
        assert (await client.get("/api/v1/stores")).status_code == 401
        basic = await client.get("/api/v1/stores", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
