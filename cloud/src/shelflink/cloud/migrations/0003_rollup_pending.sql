-- 0003 rollups off the acknowledgement path (both storage paths). Never edit
-- a committed migration; add the next number instead.
--
-- The writer no longer feeds the rollups in the commit that the ingest acks.
-- Each new reading carries the batch that inserted it, and the commit records
-- that batch in rollup_pending, in the same transaction. fold_rollups()
-- (rollups.py) later aggregates exactly those rows into the rollup tables and
-- deletes the pending row, in one transaction, so every reading is folded
-- exactly once. Readings stored before this migration have NULL here: their
-- rollups were written by the old writer.
ALTER TABLE shelf_readings ADD COLUMN gateway_id text, ADD COLUMN batch_seq bigint;
ALTER TABLE fridge_readings ADD COLUMN gateway_id text, ADD COLUMN batch_seq bigint;

-- A committed batch whose new readings are not in the rollups yet. ts_from and
-- ts_to bound those readings' times, so that the fold finds them through the
-- (store_id, ts) index and the day partitions, without an index of its own
-- on the readings (which every commit would pay for).
CREATE TABLE rollup_pending (
    gateway_id text NOT NULL,
    batch_seq bigint NOT NULL,
    store_id text NOT NULL,
    ts_from timestamptz NOT NULL,
    ts_to timestamptz NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, batch_seq)
);
