-- Provisioning status (issue 3): what each hub router enforces, written by that router's own
-- loader, so the whole fleet can be seen from one database. Same portable SQL as 0001.

-- Extends the routers table of 0001 (one row per router following this database).
ALTER TABLE routers ADD COLUMN state TEXT;            -- in-sync | held | failed | stale
ALTER TABLE routers ADD COLUMN seen_revision BIGINT;  -- newest revision the loader has read
ALTER TABLE routers ADD COLUMN held_revision BIGINT;  -- waiting for `sdn-loader confirm`
ALTER TABLE routers ADD COLUMN error TEXT;            -- why the newest revision is held/failed
ALTER TABLE routers ADD COLUMN checked_at TEXT;       -- last successful contact with the database
ALTER TABLE routers ADD COLUMN agreements BIGINT;     -- agreements in force

-- Per router and agreement: the revision the state refers to, and applied / pending / held /
-- failed (with the error); plus when the agreement last carried traffic on that router and how
-- much in the last 24 hours (what the blast-radius guard and `plan` judge by).
CREATE TABLE provisioning (
    router          TEXT NOT NULL,
    agreement_id    BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    state           TEXT NOT NULL,
    error           TEXT,
    updated_at      TEXT NOT NULL,
    last_traffic_at TEXT,
    packets_24h     BIGINT NOT NULL DEFAULT 0,
    bytes_24h       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (router, agreement_id)
);

-- `sdn-loader confirm REVISION`: releases a revision the blast-radius guard held. router '*'
-- confirms it for every router.
CREATE TABLE confirmations (
    router   TEXT NOT NULL,
    revision BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (router, revision)
);
