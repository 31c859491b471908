-- 0007 API rate limits shared by every API process (both storage paths): one
-- token bucket per API key. Never edit a committed migration; add the next
-- number instead.

-- UNLOGGED because every API request writes its key's row: without WAL a write
-- costs no log flush and no replication traffic. The price is that a crash (or
-- a failover to a standby) empties the table, which only gives every key a full
-- bucket again, as a fresh start does. A limiter may forget; orders may not,
-- which is why nothing else is unlogged.
--
-- key_id is the API key's id, with no foreign key: a bucket is only created for
-- a key that has just authenticated, and buckets left idle (revoked keys among
-- them) are deleted by the API's periodic purge. No index on updated_at either:
-- it changes on every request, and an index on it would stop the updates from
-- being HOT; the purge scans a table of one row per recently active key. The
-- fillfactor leaves room on each page for those HOT updates.
CREATE UNLOGGED TABLE api_rate_buckets (
    key_id text PRIMARY KEY,
    tokens double precision NOT NULL CHECK (tokens >= 0),
    -- On the database's clock (clock_timestamp()), never an API host's.
    updated_at timestamptz NOT NULL,
    -- Whether the latest request was allowed: what the taking statement returns.
    allowed boolean NOT NULL
) WITH (fillfactor = 50);
