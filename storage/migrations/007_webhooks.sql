-- Webhooks: endpoints per account and the delivery outbox.
-- The outbox row is written in the same transaction as the journal change that causes it
-- (storage/outbox.py), so an event is never lost and never sent for a change that rolled back.

CREATE TABLE webhook_endpoints (
    id          bigserial PRIMARY KEY,
    account_id  text NOT NULL,
    url         text NOT NULL,
    events      text[] NOT NULL,
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    -- The HMAC key. It must be readable by the service to sign (HMAC is symmetric), so it is kept
    -- like the database password: only the callrec database role reads it; the API shows it once.
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id) WHERE enabled;

-- One row per (event, endpoint). event_id is the idempotency key sent to every endpoint.
CREATE TABLE webhook_outbox (
    id              bigserial PRIMARY KEY,   -- also the order of events per recording
    event_id        uuid NOT NULL,
    endpoint_id     bigint NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type      text NOT NULL,
    recording_id    text NOT NULL,           -- text: a purged recording's row is gone
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    retry_until     timestamptz,             -- set at the first attempt: first attempt + retry period
    claimed_by      text NOT NULL DEFAULT '',
    claimed_until   timestamptz,
    last_status     integer,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_order_idx ON webhook_outbox (endpoint_id, recording_id, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_endpoint_idx ON webhook_outbox (endpoint_id, state, id);
