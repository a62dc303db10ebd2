-- Share links and the admin console.
--
-- A share link lets someone without an account play one recording until it expires or is revoked.
-- Only the SHA-256 of the link's token is stored: a database leak opens no recording.
CREATE TABLE recording_shares (
    id              bigserial PRIMARY KEY,
    recording_id    uuid NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    token_hash      text NOT NULL UNIQUE,
    created_by      text NOT NULL,                  -- user name of the creator
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    allow_download  boolean NOT NULL DEFAULT false,
    revoked_at      timestamptz,
    revoked_by      text NOT NULL DEFAULT '',
    opens           integer NOT NULL DEFAULT 0,
    last_opened_at  timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX recording_shares_rec_idx ON recording_shares (recording_id, created_at DESC);

-- Policy changes reach every running instance at once: any write to the tables the recorder's
-- policy is loaded from notifies `callrec_policy` at commit (controller.service.PolicyCache listens;
-- its periodic refresh stays as the fallback).
CREATE FUNCTION callrec_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callrec_policy', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_policy_changed AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION callrec_policy_changed();
CREATE TRIGGER numbers_policy_changed AFTER INSERT OR UPDATE OR DELETE ON numbers
    FOR EACH STATEMENT EXECUTE FUNCTION callrec_policy_changed();
CREATE TRIGGER numbering_patterns_policy_changed AFTER INSERT OR UPDATE OR DELETE ON numbering_patterns
    FOR EACH STATEMENT EXECUTE FUNCTION callrec_policy_changed();
CREATE TRIGGER app_settings_policy_changed AFTER INSERT OR UPDATE OR DELETE ON app_settings
    FOR EACH STATEMENT EXECUTE FUNCTION callrec_policy_changed();

-- The audit screen filters by time and by action family.
CREATE INDEX audit_log_action_idx ON audit_log (action, at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at DESC);
