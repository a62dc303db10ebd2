-- Chain of custody: which key signed each recording, the signing keys an operator trusted explicitly
-- (at import), and a tamper-evident (hash-chained) audit log.

-- The key that signed the manifest (its id): verify picks the public key by this id, so recordings
-- signed before a key rotation, or by another installation (imported), verify with the right key.
ALTER TABLE recordings ADD COLUMN signing_key_id text;
UPDATE recordings SET signing_key_id = manifest->>'signing_key_id' WHERE manifest IS NOT NULL;

-- Public manifest keys an operator trusted explicitly (`callrec import-archive --public-key` or
-- `--trust-archive-key`): recordings they signed keep verifying after the import. Adding one is audited.
CREATE TABLE signing_keys (
    key_id      text PRIMARY KEY CHECK (key_id ~ '^ed25519:[0-9a-f]{16}$'),
    public_key  text NOT NULL,                -- PEM (SubjectPublicKeyInfo)
    source      text NOT NULL,                -- how it came to be trusted
    added_by    text NOT NULL DEFAULT '',
    added_at    timestamptz NOT NULL DEFAULT now()
);

-- Hash chain over the audit log: every entry carries the hash of the previous one and its own hash
-- over (id, seq, prev_hash, at, actor, action, target, remote, detail). A trigger computes both
-- under the row lock of audit_chain_head, so concurrent inserts (any code path, any instance) are
-- serialized into one chain. `callrec verify --audit` recomputes it and names the first broken entry.
CREATE TABLE audit_chain_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint NOT NULL,
    hash        text NOT NULL
);

CREATE FUNCTION audit_entry_hash(
    id bigint, seq bigint, prev_hash text, at timestamptz, actor text, action text, target text, remote text,
    detail jsonb
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(jsonb_build_array(
        id, seq, prev_hash, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        actor, action, target, remote, detail)::text, 'UTF8')), 'hex')
$$;

ALTER TABLE audit_log ADD COLUMN seq bigint, ADD COLUMN prev_hash text, ADD COLUMN hash text;

-- Chain the entries that exist already, in id order.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
DO $$
DECLARE
    r record;
    n bigint := 0;
    prev text := '';
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        n := n + 1;
        UPDATE audit_log SET seq = n, prev_hash = prev,
               hash = audit_entry_hash(r.id, n, prev, r.at, r.actor, r.action, r.target, r.remote, r.detail)
         WHERE id = r.id RETURNING hash INTO prev;
    END LOOP;
    INSERT INTO audit_chain_head (seq, hash) VALUES (n, prev);
END $$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;

ALTER TABLE audit_log ALTER COLUMN seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL;
CREATE UNIQUE INDEX audit_log_seq_idx ON audit_log (seq);

CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    -- The row lock serializes every insert until its transaction ends; READ COMMITTED re-reads the
    -- head a concurrent transaction just committed.
    SELECT seq, hash INTO head FROM audit_chain_head WHERE singleton FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit_chain_head is missing: the audit chain was tampered with';
    END IF;
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.hash := audit_entry_hash(NEW.id, NEW.seq, NEW.prev_hash, NEW.at, NEW.actor, NEW.action, NEW.target,
                                 NEW.remote, NEW.detail);
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash WHERE singleton;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
