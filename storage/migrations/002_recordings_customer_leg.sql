-- A resync looks recordings up by the PBX's customer leg (adopt running ones, never re-record a call
-- whose recording already ended); keep that lookup indexed on millions of rows.
CREATE INDEX recordings_pbx_leg_idx ON recordings (pbx, customer_leg);
