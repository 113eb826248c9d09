-- The control plane's event log and its outbox.
--
-- `events` is append-only: every change to an alias registry is one row, and the current
-- registry is a projection of the rows of its stream. `outbox` holds, for each event that
-- made a registry version, the document to publish to the workers; a row is written in the
-- same transaction as its event, so a crash between commit and publish loses nothing.

CREATE TABLE events (
    sequence         INTEGER PRIMARY KEY AUTOINCREMENT,  -- global order (audit log)
    stream           TEXT    NOT NULL,
    stream_sequence  INTEGER NOT NULL,                   -- 1, 2, 3, … within `stream`
    event_type       TEXT    NOT NULL,
    schema_version   INTEGER NOT NULL,
    payload          TEXT    NOT NULL,                   -- JSON of the event
    content_hash     TEXT,                               -- null for rejected reloads
    registry_version INTEGER,                            -- null when no version was made
    actor            TEXT    NOT NULL,
    recorded_at      TEXT    NOT NULL,                   -- RFC 3339, UTC
    -- Optimistic concurrency: two writers that read the same stream position cannot both
    -- append after it. The store recognises a violation of this constraint as a conflict.
    CONSTRAINT events_stream_sequence_unique UNIQUE (stream, stream_sequence)
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_sequence INTEGER NOT NULL REFERENCES events(sequence),
    version        INTEGER NOT NULL,
    hash           TEXT    NOT NULL,
    document       TEXT    NOT NULL,                     -- JSON of bus::PublishedVersion
    created_at     TEXT    NOT NULL,
    sent_at        TEXT,                                 -- null until Redis accepted it
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT
);

CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
