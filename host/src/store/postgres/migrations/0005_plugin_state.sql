-- wasmhook schema 5: connectors' state (contract 0.2's `state` import), one small key-value
-- store per (webhook, connector), gone with its webhook. Keys and values are bytes: a plugin's
-- strings may hold NUL, which text cannot.
CREATE TABLE plugin_state (
    webhook_id text COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    connector text COLLATE "C" NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (webhook_id, connector, key)
);
