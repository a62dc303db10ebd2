-- Conferences (issue #13 §3): an EXTERNAL party joining a three-way call while
-- continue_on_external_transfer is off either stops the recording where it joins (`stop`, as before)
-- or mutes it while that party is in the call and records the customer and the agent again once it
-- has left (`mute`). Per-number overrides live in numbers.override (jsonb) as before.
ALTER TABLE accounts
    ADD COLUMN external_joiner text NOT NULL DEFAULT 'stop' CHECK (external_joiner IN ('stop', 'mute'));
