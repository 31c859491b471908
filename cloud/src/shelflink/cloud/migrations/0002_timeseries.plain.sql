-- 0002 time series, plain PostgreSQL: readings range-partitioned by UTC day,
-- rollups kept by the writer. The TimescaleDB variant of this migration
-- builds the same tables (and query surface) from hypertables and continuous
-- aggregates.
--
-- Day partitions are created on demand by the writer for the days a batch
-- touches (partitions.py); rows for a day without a partition land in the
-- DEFAULT partition, which is a safety net, not a place to live: creating a
-- day's partition moves that day's rows out of it. Retention drops whole day
-- partitions (a catalog change, no DELETE, no vacuum debt).

CREATE TABLE shelf_readings (
    store_id text NOT NULL,
    device text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    grams real[] NOT NULL,  -- index = lane + 1; NULL where the lane gave no reading
    board_c real NOT NULL
) PARTITION BY RANGE (ts);
CREATE TABLE shelf_readings_default PARTITION OF shelf_readings DEFAULT;
-- Idempotency, and a lane's time series (device, ts range).
CREATE UNIQUE INDEX shelf_readings_key ON shelf_readings (device, ts, seq);
-- A store's latest readings.
CREATE INDEX shelf_readings_store_ts ON shelf_readings (store_id, ts);
-- Time-range scans across devices; a BRIN index costs almost nothing to keep
-- because rows arrive roughly in time order.
CREATE INDEX shelf_readings_ts ON shelf_readings USING brin (ts);

CREATE TABLE fridge_readings (
    store_id text NOT NULL,
    device text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    cabinet_c real NOT NULL,
    evaporator_c real NOT NULL,
    door_open boolean NOT NULL,
    compressor_on boolean NOT NULL,
    defrost_on boolean NOT NULL
) PARTITION BY RANGE (ts);
CREATE TABLE fridge_readings_default PARTITION OF fridge_readings DEFAULT;
CREATE UNIQUE INDEX fridge_readings_key ON fridge_readings (device, ts, seq);
CREATE INDEX fridge_readings_store_ts ON fridge_readings (store_id, ts);
CREATE INDEX fridge_readings_ts ON fridge_readings USING brin (ts);

-- Rollups per shelf lane. Only lanes that gave a reading count (n). sum is
-- numeric of each value's float8, so that adding new rows in any order gives
-- exactly what a recomputation from the raw rows gives. last_* is the reading
-- with the greatest (ts, seq).
CREATE TABLE shelf_lane_minute (
    store_id text NOT NULL,
    device text NOT NULL,
    lane smallint NOT NULL,  -- 0-based, as on the wire
    bucket timestamptz NOT NULL,
    n integer NOT NULL,
    sum_grams numeric NOT NULL,
    min_grams real NOT NULL,
    max_grams real NOT NULL,
    last_ts timestamptz NOT NULL,
    last_seq bigint NOT NULL,
    last_grams real NOT NULL,
    PRIMARY KEY (device, lane, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE shelf_lane_minute_default PARTITION OF shelf_lane_minute DEFAULT;
-- No by-store index here: this is the writer's busiest table (a row per lane
-- per minute) and every index costs it. A store's lanes are found through its
-- devices, or in the hourly table.

-- Hourly rollups are small (1/60 of the minute table) and kept past retention.
CREATE TABLE shelf_lane_hour (
    store_id text NOT NULL,
    device text NOT NULL,
    lane smallint NOT NULL,
    bucket timestamptz NOT NULL,
    n integer NOT NULL,
    sum_grams numeric NOT NULL,
    min_grams real NOT NULL,
    max_grams real NOT NULL,
    last_ts timestamptz NOT NULL,
    last_seq bigint NOT NULL,
    last_grams real NOT NULL,
    PRIMARY KEY (device, lane, bucket)
) WITH (fillfactor = 70);  -- room for HOT updates: an hour's row is updated every minute
CREATE INDEX shelf_lane_hour_store ON shelf_lane_hour (store_id, bucket);

-- Rollups per fridge. door_open_n counts readings taken with the door open
-- (a share of time, not a count of openings: an opening spans readings).
CREATE TABLE fridge_minute (
    store_id text NOT NULL,
    device text NOT NULL,
    bucket timestamptz NOT NULL,
    n integer NOT NULL,
    sum_cabinet_c numeric NOT NULL,
    min_cabinet_c real NOT NULL,
    max_cabinet_c real NOT NULL,
    door_open_n integer NOT NULL,
    compressor_on_n integer NOT NULL,
    avg_cabinet_c double precision GENERATED ALWAYS AS ((sum_cabinet_c / n)::double precision) STORED,
    compressor_on_share double precision GENERATED ALWAYS AS (compressor_on_n::double precision / n) STORED,
    PRIMARY KEY (device, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE fridge_minute_default PARTITION OF fridge_minute DEFAULT;
CREATE INDEX fridge_minute_store ON fridge_minute (store_id, bucket);

CREATE TABLE fridge_hour (
    store_id text NOT NULL,
    device text NOT NULL,
    bucket timestamptz NOT NULL,
    n integer NOT NULL,
    sum_cabinet_c numeric NOT NULL,
    min_cabinet_c real NOT NULL,
    max_cabinet_c real NOT NULL,
    door_open_n integer NOT NULL,
    compressor_on_n integer NOT NULL,
    avg_cabinet_c double precision GENERATED ALWAYS AS ((sum_cabinet_c / n)::double precision) STORED,
    compressor_on_share double precision GENERATED ALWAYS AS (compressor_on_n::double precision / n) STORED,
    PRIMARY KEY (device, bucket)
) WITH (fillfactor = 70);
CREATE INDEX fridge_hour_store ON fridge_hour (store_id, bucket);
