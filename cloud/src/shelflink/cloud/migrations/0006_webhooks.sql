-- 0006 webhooks to dealers (both storage paths): endpoints, one delivery per
-- (endpoint, outbox event), and every attempt to deliver it. Never edit a
-- committed migration; add the next number instead.

-- An endpoint a dealer registered. The secret is kept as issued, not hashed
-- like API keys: the dispatcher needs it to sign every delivery, and a hash
-- cannot sign. It is as confidential as the rest of this database.
CREATE TABLE webhook_endpoints (
    webhook_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealer_id text NOT NULL REFERENCES dealers,
    url text NOT NULL CHECK (url ~ '^https?://'),
    -- 'order.<state>' names, or 'order.*' for every state.
    event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
    secret text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_dealer ON webhook_endpoints (dealer_id, webhook_id);

-- One event for one endpoint. delivery_id is the X-Shelflink-Delivery header:
-- the same for every attempt, so receivers can drop repeats. The unique
-- (webhook_id, event_id) makes the fan-out from the outbox idempotent.
CREATE TABLE webhook_deliveries (
    delivery_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id bigint NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    event_id bigint NOT NULL REFERENCES order_events ON DELETE CASCADE,
    order_id bigint NOT NULL,
    event_type text NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    -- When the next attempt is due; NULL once delivered or dead.
    next_attempt_at timestamptz DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (webhook_id, event_id)
);
-- What the dispatcher claims: due deliveries, oldest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- Per endpoint and order, one delivery at a time and in event order: the claim
-- looks here for an earlier pending delivery of the same order.
CREATE INDEX webhook_deliveries_order_queue ON webhook_deliveries (webhook_id, order_id, event_id)
    WHERE state = 'pending';

-- Every attempt: the HTTP status, or the error when there was no answer.
CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt > 0),
    attempted_at timestamptz NOT NULL,
    status_code integer,
    error text,
    latency_ms double precision NOT NULL,
    -- When the retry is due; NULL when this attempt delivered or was the last.
    next_attempt_at timestamptz,
    PRIMARY KEY (delivery_id, attempt)
);
