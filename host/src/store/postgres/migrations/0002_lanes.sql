-- wasmhook schema 2: per-webhook lanes, so that one live host at a time works a webhook's
-- deliveries (its order, concurrency cap and rate limit hold for all hosts together).

-- The live hosts: each open store (process) upserts its row every heartbeat; a row unseen
-- for longer than the hosts' time to live is deleted by any host.
CREATE TABLE hosts (
    id uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);

-- Which host works a webhook's queue entries, until when: renewed every heartbeat, taken
-- over once expired or once its owner is no longer in `hosts`. A lane exists while its
-- webhook has queue entries. `expires_at` is in no index, so a renewal is a HOT update.
CREATE TABLE lanes (
    webhook_id text COLLATE "C" PRIMARY KEY,
    owner uuid NOT NULL,
    expires_at timestamptz NOT NULL
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
CREATE INDEX lanes_by_owner ON lanes (owner, webhook_id);

-- A webhook's entries, and those of them one process claimed: what taking over, releasing
-- and forgetting a lane read, and the distinct webhooks with entries (a skip scan).
CREATE INDEX queue_by_webhook ON queue (webhook_id, claimed_by);
