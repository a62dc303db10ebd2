-- Phone feature codes and secure pause (issue #14): per-account settings; numbers override them in
-- their `override` jsonb like every other setting (only the fields they set).
--   pause_max_seconds       0 = a pause lasts until resumed; else it resumes by itself after it
--   agent_record_on_demand  the agent's record code starts recording a call policy did not record
--   announcement            the consent announcement the customer hears when recording starts:
--                           none | beep | prompt (a sound file) | periodic (a beep every interval)
--   announcement_interval_seconds, announcement_prompt, announcement_after_resume (announce again
--                           when a paused recording resumes)

ALTER TABLE accounts
    ADD COLUMN pause_max_seconds integer NOT NULL DEFAULT 0
        CHECK (pause_max_seconds BETWEEN 0 AND 86400),
    ADD COLUMN agent_record_on_demand boolean NOT NULL DEFAULT false,
    ADD COLUMN announcement text NOT NULL DEFAULT 'none'
        CHECK (announcement IN ('none', 'beep', 'prompt', 'periodic')),
    ADD COLUMN announcement_interval_seconds integer NOT NULL DEFAULT 30
        CHECK (announcement_interval_seconds BETWEEN 1 AND 3600),
    ADD COLUMN announcement_prompt text NOT NULL DEFAULT '' CHECK (length(announcement_prompt) <= 255),
    ADD COLUMN announcement_after_resume boolean NOT NULL DEFAULT false;
