-- 0001 core: the tables both storage paths share. Never edit a committed
-- migration; add the next number instead.

-- Which gateway may send for which store. The ingest refuses batches from a
-- gateway that is not here, or that names another store.
CREATE TABLE gateways (
    gateway_id text PRIMARY KEY,
    store_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateways_store ON gateways (store_id);

-- Batch-level idempotency: a (gateway, batch_seq) here was committed, with
-- these counts, and a replay of it is answered from this row.
CREATE TABLE batches (
    gateway_id text NOT NULL,
    batch_seq bigint NOT NULL,
    store_id text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    rows_new integer NOT NULL,
    rows_duplicate integer NOT NULL,
    PRIMARY KEY (gateway_id, batch_seq)
);

-- Row-level idempotency everywhere below: a device's (seq, ts) is stored once.
-- The key leads with (device, ts) so that it also serves a device's time series.

CREATE TABLE sales (
    store_id text NOT NULL,
    device text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    gtin text NOT NULL,
    serial text,  -- NULL: the item carries no serial code
    qty integer NOT NULL,
    unit_price_minor bigint NOT NULL,
    currency text NOT NULL,
    receipt_id text NOT NULL,
    CONSTRAINT sales_key UNIQUE (device, ts, seq)
);
-- Sales by store and day.
CREATE INDEX sales_store_ts ON sales (store_id, ts);

CREATE TABLE goods_receipts (
    store_id text NOT NULL,
    device text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    gtin text NOT NULL,
    serial text,
    qty integer NOT NULL,
    delivery_ref text NOT NULL,
    CONSTRAINT goods_receipts_key UNIQUE (device, ts, seq)
);
CREATE INDEX goods_receipts_store_ts ON goods_receipts (store_id, ts);

-- Births, shutdowns and last wills. A status does not consume a seq (it names
-- the next one), so a birth and its will may share (seq, ts): cause is in the key.
CREATE TABLE device_status (
    store_id text NOT NULL,
    device text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    online boolean NOT NULL,
    cause text NOT NULL,
    kind text NOT NULL,
    firmware text NOT NULL,
    boot_id text NOT NULL,
    interval_ms integer NOT NULL,
    lanes integer,  -- NULL for devices without lanes
    CONSTRAINT device_status_key UNIQUE (device, ts, seq, cause)
);
CREATE INDEX device_status_store_ts ON device_status (store_id, ts);

-- What gateways concluded (sequence gaps, stock-out risks, cold-chain alarms),
-- numbered by each gateway's own event sequence.
CREATE TABLE events (
    gateway_id text NOT NULL,
    seq bigint NOT NULL,
    store_id text NOT NULL,
    source text NOT NULL,
    ts timestamptz NOT NULL,
    type text NOT NULL,
    severity text NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (gateway_id, seq)
);
CREATE INDEX events_store_ts ON events (store_id, ts);
CREATE INDEX events_source_ts ON events (source, ts);

-- Input the ingest could not store, kept whole with the reason, so nothing
-- bad is silently lost and nothing bad stops the pipeline.
CREATE TABLE dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic text NOT NULL,
    gateway_id text,  -- NULL when the topic named none we could read
    reason text NOT NULL,
    detail text NOT NULL,
    raw bytea NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
CREATE INDEX dead_letters_gateway ON dead_letters (gateway_id, received_at);
