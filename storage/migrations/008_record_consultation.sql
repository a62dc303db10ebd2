-- An agent's consultation during a customer call (the call to a colleague or an outside number before
-- an attended transfer) belongs to that customer call: it is always listed in its timeline, and
-- recorded as a recording of its own (target left, agent right, filed under the customer call's
-- numbers) only when the account or the number says so. Off by default: the consultation is not
-- the customer's conversation. Per-number overrides live in numbers.override (jsonb) as before.
ALTER TABLE accounts ADD COLUMN record_consultation boolean NOT NULL DEFAULT false;
