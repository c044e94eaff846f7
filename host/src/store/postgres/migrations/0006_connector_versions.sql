-- wasmhook schema 6: connector versions. Every upload of a name is kept (`connectors` still
-- holds the live one's component, which every host loads); `connector_heads` says which
-- version is live, which were live before, which one shadows; `shadow_runs` keeps what a
-- shadowing candidate did beside the live version, until the retention removes it.
CREATE TABLE connector_versions (
    name text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    record bytea NOT NULL,
    component bytea NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE connector_heads (
    name text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE shadow_runs (
    connector text COLLATE "C" NOT NULL,
    -- `sr_` + a UUIDv7: in the order they ran.
    id text COLLATE "C" NOT NULL,
    at_ms bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (connector, id)
);
CREATE INDEX shadow_runs_by_time ON shadow_runs (at_ms);
