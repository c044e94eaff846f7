-- wasmhook schema 8: the webhooks each host has demand for (it ingests their events or holds
-- their queue entries), so that a webhook shared by hosts splits its concurrency cap among
-- those that deliver it, not among every live host. Written by the host's heartbeat when it
-- changes.
ALTER TABLE hosts ADD COLUMN demand text[] NOT NULL DEFAULT '{}';
