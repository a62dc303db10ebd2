-- Storage locations, WORM and scheduled backups.

-- Which configured store holds a recording: 'default' ([storage]) or 'account:<id>'
-- ([accounts.<id>.storage]). Playback, verify, export and purge open that store.
ALTER TABLE recordings ADD COLUMN storage_location text NOT NULL DEFAULT 'default';

-- WORM: the retain-until date the store itself enforces on the object (S3 Object Lock), or NULL.
ALTER TABLE recordings ADD COLUMN object_locked_until timestamptz;

-- One row per backup run: an export archive of a rolling window written to the backup location,
-- read back and verified (every manifest signature and hash) before it counts.
CREATE TABLE backup_runs (
    id              bigserial PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'verified', 'failed')),
    window_from     timestamptz NOT NULL,
    window_to       timestamptz NOT NULL,
    destination     text NOT NULL DEFAULT '',   -- URI of the archive in the backup store
    archive_sha256  text NOT NULL DEFAULT '',
    archive_size    bigint NOT NULL DEFAULT 0,
    recordings      integer NOT NULL DEFAULT 0,
    error           text NOT NULL DEFAULT '',
    node            text NOT NULL DEFAULT ''
);
CREATE INDEX backup_runs_started_idx ON backup_runs (started_at DESC);

-- What each run holds. No foreign key to recordings: the backup outlives the purged recording, and
-- this is how a purge names the backup that still holds it.
CREATE TABLE backup_members (
    run_id              bigint NOT NULL REFERENCES backup_runs(id) ON DELETE CASCADE,
    recording_id        uuid NOT NULL,
    ciphertext_sha256   text NOT NULL,
    PRIMARY KEY (run_id, recording_id)
);
CREATE INDEX backup_members_recording_idx ON backup_members (recording_id);
