-- 0004 the dealer side (both storage paths): master data, API keys, orders and
-- their workflow, the outbox for webhooks, alerts, and idempotent API requests.
-- Never edit a committed migration; add the next number instead.
--
-- A database serves one brand (the tenant): tenants are separated by database,
-- not by a column on every row, so that no query can forget the filter.

CREATE TABLE brand (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dealers (
    dealer_id text PRIMARY KEY CHECK (dealer_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name text NOT NULL,
    -- Region codes the dealer serves; a store's region must be one of them.
    territory text[] NOT NULL DEFAULT '{}',
    currency text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    -- Orders in the dealer's currency worth less than this are approved by the
    -- system when they are created; 0 approves nothing automatically.
    auto_approve_below_minor bigint NOT NULL DEFAULT 0 CHECK (auto_approve_below_minor >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- store_id is the id gateways send for (gateways.store_id). No foreign key from
-- gateways: a gateway may be registered before the store's master data arrives.
CREATE TABLE stores (
    store_id text PRIMARY KEY,
    dealer_id text NOT NULL REFERENCES dealers,
    name text NOT NULL,
    region text NOT NULL,
    lead_time_days integer NOT NULL CHECK (lead_time_days BETWEEN 0 AND 365),
    -- ISO weekdays (1 = Monday … 7 = Sunday) on which the dealer delivers.
    delivery_weekdays smallint[] NOT NULL
        CHECK (delivery_weekdays <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_dealer ON stores (dealer_id, store_id);

CREATE TABLE skus (
    gtin text PRIMARY KEY CHECK (gtin ~ '^[0-9]{8,14}$'),
    name text NOT NULL,
    case_pack integer NOT NULL CHECK (case_pack > 0),
    -- The smallest order line, in units (a multiple of case_pack).
    min_order_units integer NOT NULL CHECK (min_order_units > 0),
    shelf_life_days integer CHECK (shelf_life_days > 0),  -- NULL: does not expire
    cold_chain text NOT NULL CHECK (cold_chain IN ('ambient', 'chilled', 'frozen')),
    -- What a dealer's order line is valued at unless the order says otherwise.
    list_price_minor bigint NOT NULL CHECK (list_price_minor >= 0),
    -- The brand's minimum resale price; channel control compares sales with it.
    min_resale_minor bigint NOT NULL CHECK (min_resale_minor >= 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Which SKU sits on which lane of which shelf device, and how many units fit.
CREATE TABLE planograms (
    store_id text NOT NULL REFERENCES stores ON DELETE CASCADE,
    device text NOT NULL,
    lane integer NOT NULL CHECK (lane BETWEEN 0 AND 63),
    gtin text NOT NULL REFERENCES skus,
    capacity integer NOT NULL CHECK (capacity > 0),
    PRIMARY KEY (store_id, device, lane)
);
CREATE INDEX planograms_gtin ON planograms (gtin);

-- What the dealer reports it holds in its own warehouse.
CREATE TABLE dealer_stock (
    dealer_id text NOT NULL REFERENCES dealers,
    gtin text NOT NULL REFERENCES skus,
    units integer NOT NULL CHECK (units >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dealer_id, gtin)
);

-- Which serialised items the brand shipped to which dealer: channel control
-- finds a serial sold outside its dealer's territory through this table.
CREATE TABLE serial_shipments (
    gtin text NOT NULL REFERENCES skus,
    serial text NOT NULL,
    dealer_id text NOT NULL REFERENCES dealers,
    shipment_ref text NOT NULL,
    shipped_at timestamptz NOT NULL,
    PRIMARY KEY (gtin, serial)
);
CREATE INDEX serial_shipments_dealer ON serial_shipments (dealer_id, shipped_at);

-- API keys. key_id is the public part of a key (it is in the key itself and
-- finds the row); only the SHA-256 of the secret part is stored. dealer_id
-- NULL is a brand operator's key.
CREATE TABLE api_keys (
    key_id text PRIMARY KEY,
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    dealer_id text REFERENCES dealers,
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_dealer ON api_keys (dealer_id);

-- Orders: one delivery of one dealer to one store, with lines.
CREATE TABLE orders (
    order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealer_id text NOT NULL REFERENCES dealers,
    store_id text NOT NULL REFERENCES stores,
    state text NOT NULL CHECK (state IN (
        'suggested', 'approved', 'picking', 'shipped', 'delivered', 'rejected', 'cancelled'
    )),
    reason text NOT NULL,
    expedite boolean NOT NULL DEFAULT false,
    value_minor bigint NOT NULL CHECK (value_minor >= 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Bumped by every change: the ETag, and the guard against lost updates.
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Keyset pagination, newest first, for each filter the API offers: a page is
-- one index range scan whatever the table's size.
CREATE INDEX orders_dealer_page ON orders (dealer_id, order_id);
CREATE INDEX orders_dealer_state_page ON orders (dealer_id, state, order_id);
CREATE INDEX orders_store_page ON orders (store_id, order_id);
CREATE INDEX orders_store_state_page ON orders (store_id, state, order_id);
CREATE INDEX orders_state_page ON orders (state, order_id);

CREATE TABLE order_lines (
    order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    line_no integer NOT NULL,
    gtin text NOT NULL REFERENCES skus,
    quantity integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- The audit trail: every state an order entered, who moved it and why.
-- from_state NULL is the order's creation.
CREATE TABLE order_transitions (
    transition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    from_state text,
    to_state text NOT NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('dealer', 'operator', 'system')),
    actor_key_id text,  -- NULL for the system
    actor_dealer_id text,
    note text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_transitions_order ON order_transitions (order_id, transition_id);

-- The outbox: what happened to orders, written in the transaction that made it
-- happen, for the webhook sender to deliver at least once. published_at is set
-- by the sender.
CREATE TABLE order_events (
    event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    dealer_id text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX order_events_unpublished ON order_events (event_id) WHERE published_at IS NULL;
CREATE INDEX order_events_dealer ON order_events (dealer_id, event_id);

-- The store's backroom: what deliveries brought in. The receiving scanner's
-- scans go to goods_receipts (device rows, keyed by device seq); this ledger
-- is what the dealer declared delivered, which the planner counts as on hand.
CREATE TABLE backroom_receipts (
    receipt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id text NOT NULL REFERENCES stores,
    gtin text NOT NULL REFERENCES skus,
    units integer NOT NULL CHECK (units > 0),
    order_id bigint REFERENCES orders,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backroom_receipts_store ON backroom_receipts (store_id, received_at);

CREATE TABLE backroom_stock (
    store_id text NOT NULL REFERENCES stores,
    gtin text NOT NULL REFERENCES skus,
    units integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, gtin)
);

-- What channel control (and later checks) concluded, with the evidence.
-- dealer_id decides who may see an alert; NULL: brand operators only.
CREATE TABLE alerts (
    alert_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealer_id text REFERENCES dealers,
    store_id text,
    kind text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    evidence jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX alerts_dealer_page ON alerts (dealer_id, alert_id);

-- Responses to POSTs that carried an Idempotency-Key, per API key, so that a
-- retry gets the first answer instead of a second side effect. status NULL:
-- the first request is still running.
CREATE TABLE idempotency_keys (
    key_id text NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    status integer,
    headers jsonb,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
