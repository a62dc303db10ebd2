-- Scale-out: the live controller instances of a deployment (controller.lease.LeaseManager).
-- Each running `callrec run` process heartbeats one row; the PBX nodes are spread over the rows that
-- have not expired (rendezvous hashing on `name`, controller/assignment.py). A row is kept after the
-- process is gone (expires_at in the past) so that the finalize claims of that process (`token` is
-- its finalize claim token) can be recognised as abandoned and taken over without waiting for the
-- claim's own lease; rows expired for a day are pruned.
CREATE TABLE IF NOT EXISTS controller_members (
    token        text PRIMARY KEY,             -- one per process: <node_id>/<pid>/<random>
    name         text NOT NULL,                -- the instance's node_id (stable across restarts)
    nodes        text[] NOT NULL DEFAULT '{}', -- the PBX nodes its configuration lets it drive
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS controller_members_live_idx ON controller_members (expires_at);

-- A lease row now outlives its holder's release (expires_at = release time), so a node nobody took
-- for a while can be told from one just handed over; epoch counts the changes of holder.
ALTER TABLE pbx_leases ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
