-- 0002 time series, TimescaleDB. NOT EXERCISED by the test suite (no
-- TimescaleDB on the CI machine); written against TimescaleDB 2.13+ and kept
-- to the same table names, columns and keys as the plain variant, so the
-- writer and every query work on both.
--
-- Differences from plain PostgreSQL:
--  * readings are hypertables with one-day chunks (no DEFAULT partition, no
--    on-demand partition code: TimescaleDB creates chunks itself);
--  * chunks older than 7 days are compressed, segmented by device;
--  * retention is a TimescaleDB policy, (re)installed by apply_retention()
--    with the configured number of days;
--  * fridge rollups are continuous aggregates (real-time: recent rows are
--    included before they are materialised). Shelf-lane rollups stay tables
--    kept by the writer: one row per lane needs unnest(), which a continuous
--    aggregate cannot express.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE shelf_readings (
    store_id text NOT NULL,
    device text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    grams real[] NOT NULL,
    board_c real NOT NULL
);
SELECT create_hypertable('shelf_readings', 'ts', chunk_time_interval => interval '1 day');
CREATE UNIQUE INDEX shelf_readings_key ON shelf_readings (device, ts, seq);
CREATE INDEX shelf_readings_store_ts ON shelf_readings (store_id, ts);
ALTER TABLE shelf_readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device',
    timescaledb.compress_orderby = 'ts, seq'
);
SELECT add_compression_policy('shelf_readings', interval '7 days');

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
);
SELECT create_hypertable('fridge_readings', 'ts', chunk_time_interval => interval '1 day');
CREATE UNIQUE INDEX fridge_readings_key ON fridge_readings (device, ts, seq);
CREATE INDEX fridge_readings_store_ts ON fridge_readings (store_id, ts);
ALTER TABLE fridge_readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device',
    timescaledb.compress_orderby = 'ts, seq'
);
SELECT add_compression_policy('fridge_readings', interval '7 days');

CREATE TABLE shelf_lane_minute (
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
);
SELECT create_hypertable('shelf_lane_minute', 'bucket', chunk_time_interval => interval '1 day');

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
) WITH (fillfactor = 70);
CREATE INDEX shelf_lane_hour_store ON shelf_lane_hour (store_id, bucket);

-- The same columns as the plain path's fridge_minute / fridge_hour tables.
CREATE MATERIALIZED VIEW fridge_minute WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT store_id,
       device,
       time_bucket(interval '1 minute', ts) AS bucket,
       count(*)::integer AS n,
       sum(cabinet_c::float8::numeric) AS sum_cabinet_c,
       min(cabinet_c) AS min_cabinet_c,
       max(cabinet_c) AS max_cabinet_c,
       (count(*) FILTER (WHERE door_open))::integer AS door_open_n,
       (count(*) FILTER (WHERE compressor_on))::integer AS compressor_on_n,
       (sum(cabinet_c::float8::numeric) / count(*))::double precision AS avg_cabinet_c,
       (count(*) FILTER (WHERE compressor_on))::double precision / count(*) AS compressor_on_share
FROM fridge_readings
GROUP BY store_id, device, time_bucket(interval '1 minute', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW fridge_hour WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT store_id,
       device,
       time_bucket(interval '1 hour', ts) AS bucket,
       count(*)::integer AS n,
       sum(cabinet_c::float8::numeric) AS sum_cabinet_c,
       min(cabinet_c) AS min_cabinet_c,
       max(cabinet_c) AS max_cabinet_c,
       (count(*) FILTER (WHERE door_open))::integer AS door_open_n,
       (count(*) FILTER (WHERE compressor_on))::integer AS compressor_on_n,
       (sum(cabinet_c::float8::numeric) / count(*))::double precision AS avg_cabinet_c,
       (count(*) FILTER (WHERE compressor_on))::double precision / count(*) AS compressor_on_share
FROM fridge_readings
GROUP BY store_id, device, time_bucket(interval '1 hour', ts)
WITH NO DATA;

-- Gateways replay up to 30 days of buffered readings after an outage, so the
-- refresh window reaches back further than that.
SELECT add_continuous_aggregate_policy('fridge_minute',
    start_offset => interval '35 days', end_offset => interval '1 minute',
    schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('fridge_hour',
    start_offset => interval '35 days', end_offset => interval '1 hour',
    schedule_interval => interval '15 minutes');
