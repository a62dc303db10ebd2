-- callrec initial schema. Applied once, in a transaction, under an advisory lock (storage/db.py).
-- Sized for millions of recordings: every API search has an index that starts with its filter
-- and ends with (started_at, id) for keyset pagination.

CREATE TABLE app_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id                              text PRIMARY KEY,
    name                            text NOT NULL DEFAULT '',
    record_inbound                  boolean NOT NULL DEFAULT true,
    record_outbound                 boolean NOT NULL DEFAULT true,
    continue_on_external_transfer   boolean NOT NULL DEFAULT true,
    agent_pause_allowed             boolean NOT NULL DEFAULT false,
    dual_channel                    boolean NOT NULL DEFAULT true,
    retention_days                  integer NOT NULL DEFAULT 183 CHECK (retention_days > 0),
    created_at                      timestamptz NOT NULL DEFAULT now(),
    updated_at                      timestamptz NOT NULL DEFAULT now()
);

-- Numbering plan: regexes on the dialled string, per account and class.
CREATE TABLE numbering_patterns (
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    class       text NOT NULL CHECK (class IN ('internal', 'ring_group', 'private_extension')),
    position    integer NOT NULL,
    pattern     text NOT NULL,
    PRIMARY KEY (account_id, class, position)
);

-- A phone number (E.164) belongs to exactly one account; `override` holds only the fields it sets.
CREATE TABLE numbers (
    number      text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    override    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX numbers_account_idx ON numbers (account_id);

CREATE TABLE calls (
    id              uuid PRIMARY KEY,
    pbx             text NOT NULL,
    pbx_call_id     text NOT NULL,           -- FreeSWITCH customer-leg UUID / Asterisk Linkedid
    account_id      text,
    direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal', 'unknown')),
    customer_number text NOT NULL DEFAULT '',
    account_number  text NOT NULL DEFAULT '',  -- DID (inbound) or presented caller ID (outbound), E.164 when possible
    agent           text NOT NULL DEFAULT '',
    ring_group      text NOT NULL DEFAULT '',
    state           text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'ended')),
    end_reason      text NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    ended_at        timestamptz,
    UNIQUE (pbx, pbx_call_id)
);
CREATE INDEX calls_live_idx ON calls (pbx) WHERE state = 'live';
CREATE INDEX calls_started_idx ON calls (started_at, id);

-- The recording journal: a row exists from the moment recording starts.
CREATE TABLE recordings (
    id                  uuid PRIMARY KEY,
    call_id             uuid REFERENCES calls(id) ON DELETE SET NULL,
    pbx                 text NOT NULL,
    pbx_kind            text NOT NULL CHECK (pbx_kind IN ('freeswitch', 'asterisk')),
    customer_leg        text NOT NULL DEFAULT '',
    account_id          text,
    direction           text NOT NULL DEFAULT 'unknown',
    customer_number     text NOT NULL DEFAULT '',
    account_number      text NOT NULL DEFAULT '',
    agent               text NOT NULL DEFAULT '',      -- first agent
    agents              text[] NOT NULL DEFAULT '{}',  -- every agent on a segment (search + scope)
    ring_groups         text[] NOT NULL DEFAULT '{}',  -- every ring group the call rang (scope)
    state               text NOT NULL CHECK (state IN ('recording', 'paused', 'stopped', 'stored', 'failed', 'orphaned')),
    error               text NOT NULL DEFAULT '',
    policy              jsonb NOT NULL DEFAULT '{}'::jsonb,   -- decision + sources + effective settings
    dual_channel        boolean NOT NULL DEFAULT true,
    spool_files         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- {"stereo": path} or {"rx": path, "tx": path}
    timeline            jsonb NOT NULL DEFAULT '{}'::jsonb,   -- segments, pauses, transfers (also derivable from recording_events)
    started_at          timestamptz NOT NULL DEFAULT now(),
    stopped_at          timestamptz,
    stop_reason         text NOT NULL DEFAULT '',
    duration_ms         bigint,
    object_uri          text,
    object_size         bigint,
    audio_sha256        text,
    ciphertext_sha256   text,
    key_ids             text[] NOT NULL DEFAULT '{}',
    manifest            jsonb,
    manifest_signature  text,
    retention_until     timestamptz NOT NULL,
    legal_hold          boolean NOT NULL DEFAULT false,
    stored_at           timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_started_idx ON recordings (started_at DESC, id DESC);
CREATE INDEX recordings_customer_idx ON recordings (customer_number, started_at DESC, id DESC);
CREATE INDEX recordings_account_number_idx ON recordings (account_number, started_at DESC, id DESC);
CREATE INDEX recordings_direction_idx ON recordings (direction, started_at DESC, id DESC);
CREATE INDEX recordings_state_idx ON recordings (state, started_at DESC, id DESC);
CREATE INDEX recordings_agents_idx ON recordings USING gin (agents);
CREATE INDEX recordings_ring_groups_idx ON recordings USING gin (ring_groups);
CREATE INDEX recordings_call_idx ON recordings (call_id);
CREATE INDEX recordings_retention_idx ON recordings (retention_until) WHERE NOT legal_hold;
CREATE INDEX recordings_open_idx ON recordings (pbx, state) WHERE state IN ('recording', 'paused', 'stopped', 'orphaned');

-- What happened to a recording, in order: start, pause, resume, segment, transfer, stop, ...
CREATE TABLE recording_events (
    id              bigserial PRIMARY KEY,
    recording_id    uuid NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind            text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    offset_ms       bigint NOT NULL DEFAULT 0,   -- position in the recording's timeline
    actor           text NOT NULL DEFAULT '',    -- who: agent ext, user name, 'policy', 'pbx'
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX recording_events_rec_idx ON recording_events (recording_id, id);

CREATE TABLE finalize_jobs (
    recording_id    uuid PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    step            text NOT NULL DEFAULT 'wait_closed',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    claimed_by      text NOT NULL DEFAULT '',
    claimed_until   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX finalize_jobs_due_idx ON finalize_jobs (next_attempt_at) WHERE state IN ('pending', 'running');

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    role            text NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
    agent_ext       text NOT NULL DEFAULT '',
    listen_scope    text NOT NULL DEFAULT 'all',     -- none | all | ring_group:<id> | agent:<ext>
    download_scope  text NOT NULL DEFAULT 'none',
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash      text NOT NULL UNIQUE,            -- sha256 hex of the bearer token
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked         boolean NOT NULL DEFAULT false
);

-- Append-only: UPDATE and DELETE are refused by a trigger.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL DEFAULT '',
    remote      text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target, at DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- One active service instance per PBX node (high availability); see controller/lease.py.
CREATE TABLE pbx_leases (
    pbx         text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
);
