-- wasmhook schema 4: dead letters of broker sources — messages a source could not take as
-- events, kept with the reason until the retention removes them.
CREATE TABLE dead_letters (
    source text COLLATE "C" NOT NULL,
    -- `dl_` + a UUIDv7: in the order they were set aside.
    id text COLLATE "C" NOT NULL,
    at_ms bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX dead_letters_by_time ON dead_letters (at_ms);
