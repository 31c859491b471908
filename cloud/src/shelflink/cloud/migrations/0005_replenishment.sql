-- 0005 replenishment runs and channel control (both storage paths). Never edit
-- a committed migration; add the next number instead.

-- Alerts that a check may conclude again (channel control rescans the same
-- sales, the planner sees the same fridge alarm at every run) carry the
-- identity of what they are about, and that identity is stored once.
-- NULL: an alert without such an identity (never de-duplicated).
ALTER TABLE alerts ADD COLUMN dedup_key text;
CREATE UNIQUE INDEX alerts_dedup ON alerts (kind, dedup_key) WHERE dedup_key IS NOT NULL;

-- When a sale reached the database: channel control scans sales incrementally
-- by arrival, not by event time, because a gateway replays sales days late
-- after an outage. Rows stored before this migration get the migration's time
-- (a constant default costs no table rewrite). BRIN: rows arrive in this order.
ALTER TABLE sales ADD COLUMN ingested_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX sales_ingested ON sales USING brin (ingested_at);

-- The edge's standing alerts are a small share of the events; the planner reads
-- the latest state of each per store at every run.
CREATE INDEX events_lane_alerts ON events (store_id, ts)
    WHERE type IN ('stockout_risk', 'out_of_stock', 'cold_chain_alarm');

-- One planning run of one dealer: what it looked at and what it created.
CREATE TABLE planning_runs (
    run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealer_id text NOT NULL REFERENCES dealers,
    trigger text NOT NULL,  -- 'manual', 'schedule' or 'stockout_risk'
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    history_days integer NOT NULL,
    stores integer NOT NULL,
    pairs integer NOT NULL,
    orders_created integer NOT NULL,
    lines_created integer NOT NULL,
    units_ordered bigint NOT NULL,
    -- Pairs per planner reason code, plus the run's own outcomes
    -- (already_on_order, rejected_recently, dropped_below_minimum).
    by_reason jsonb NOT NULL,
    order_ids bigint[] NOT NULL
);
CREATE INDEX planning_runs_dealer ON planning_runs (dealer_id, run_id);

-- One channel-control scan: the arrival window of the sales it read.
CREATE TABLE channel_scans (
    scan_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scanned_from timestamptz,  -- NULL: from the first sale
    scanned_to timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    sales_scanned bigint NOT NULL,
    diversion_alerts integer NOT NULL,
    price_alerts integer NOT NULL
);

-- A raised stock-out risk (or a lane that ran empty) wakes the planner
-- scheduler at once instead of at its next tick. The payload is the store;
-- PostgreSQL delivers it at commit and folds repeats within one transaction.
CREATE FUNCTION notify_replenishment_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shelflink_replenishment', NEW.store_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_wake_planner
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.type IN ('stockout_risk', 'out_of_stock') AND NEW.body ->> 'state' = 'raised')
    EXECUTE FUNCTION notify_replenishment_trigger();
