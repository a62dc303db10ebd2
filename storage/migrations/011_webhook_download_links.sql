-- Webhook download links (README "Webhooks"): an endpoint may opt in to a short-lived share link in
-- its `recording.stored` events. Off by default; the link is minted at delivery time as an ordinary
-- row of recording_shares (created_by = 'webhook:<endpoint id>'), so it is audited, listed with the
-- recording's other share links and revocable like them. Nothing else is stored: no token, no URL.
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS download_link boolean NOT NULL DEFAULT false;
