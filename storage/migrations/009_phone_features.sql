-- Phone feature codes and secure pause (issue #14): per-account settings; numbers override them in
-- their `override` jsonb like every other setting (only the fields they set).
--   pause_max_seconds       0 = a pause lasts until resumed; else it resumes by itself after it
--   agent_record_on_demand  the agent's record code starts recording a call policy did not record

ALTER TABLE accounts
    ADD COLUMN pause_max_seconds integer NOT NULL DEFAULT 0
        CHECK (pause_max_seconds BETWEEN 0 AND 86400),
    ADD COLUMN agent_record_on_demand boolean NOT NULL DEFAULT false;
