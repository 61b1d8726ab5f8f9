-- Per-agreement traffic KPIs (issue 4), written by each router's collector. Same portable SQL
-- as 0001: TEXT and BIGINT only; times are TEXT 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC).
--
-- Roll-up happens when a pass is written: every delta is added to its minute, hour and day
-- bucket in the same transaction, so the three resolutions always hold the same totals over
-- the time they cover. Retention then only deletes old rows of a resolution (default: minutes
-- 7 days, hours 365 days, days forever).

-- Traffic per router, agreement and bucket. resolution: 'minute' | 'hour' | 'day'; bucket:
-- the bucket's start time. The key starts with (resolution, bucket) so that time-range
-- queries (with or without a router) and retention use it; no second index is kept, as each
-- one costs every pass a B-tree insert per row.
CREATE TABLE kpi_traffic (
    router          TEXT NOT NULL,
    resolution      TEXT NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket          TEXT NOT NULL,
    agreement_id    BIGINT NOT NULL,
    forward_packets BIGINT NOT NULL,
    forward_bytes   BIGINT NOT NULL,
    reply_packets   BIGINT NOT NULL,
    reply_bytes     BIGINT NOT NULL,
    transactions    BIGINT NOT NULL,
    PRIMARY KEY (resolution, bucket, router, agreement_id)
);

-- Packets per pass/drop reason (the data plane's SDN_STATS), per router and bucket.
CREATE TABLE kpi_reasons (
    router     TEXT NOT NULL,
    resolution TEXT NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    packets    BIGINT NOT NULL,
    PRIMARY KEY (resolution, bucket, router, reason)
);

-- The collector's baseline: the counter values it last recorded, per router and counter slot,
-- with the agreement the slot held then. Written in the same transaction as the deltas, so a
-- restart neither loses nor repeats an interval.
CREATE TABLE kpi_slot_state (
    router          TEXT NOT NULL,
    slot            BIGINT NOT NULL,
    agreement_id    BIGINT NOT NULL,
    forward_packets BIGINT NOT NULL,
    forward_bytes   BIGINT NOT NULL,
    reply_packets   BIGINT NOT NULL,
    reply_bytes     BIGINT NOT NULL,
    transactions    BIGINT NOT NULL,
    PRIMARY KEY (router, slot)
);

CREATE TABLE kpi_reason_state (
    router  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    packets BIGINT NOT NULL,
    PRIMARY KEY (router, reason)
);

-- One row per router: the newest collection pass.
CREATE TABLE kpi_collector (
    router     TEXT PRIMARY KEY,
    last_pass  TEXT NOT NULL,
    pass_us    BIGINT NOT NULL,
    agreements BIGINT NOT NULL,
    passes     BIGINT NOT NULL
);
