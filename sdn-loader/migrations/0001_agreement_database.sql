-- The agreement database (issue 3), schema version 1.
--
-- Portable SQL: the same file runs on SQLite and PostgreSQL (sqlx's Any driver), so it uses
-- only TEXT and BIGINT columns, plain PRIMARY KEY / REFERENCES / CHECK constraints and no
-- sequences. Dates are TEXT 'YYYY-MM-DD'; times are TEXT 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC,
-- fixed width, so text order is time order). Port sets are TEXT in a canonical form: sorted,
-- merged ranges, comma-separated ("104,11112", "8000-8100"); '' means every port.

CREATE TABLE organisations (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE port_aliases (
    name     TEXT PRIMARY KEY,
    protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp', 'sctp')),
    ports    TEXT NOT NULL
);

CREATE TABLE services (
    id           TEXT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (id),
    name         TEXT NOT NULL
);
CREATE INDEX services_organisation ON services (organisation);

-- Endpoints keep their order within the service (seq); ports are stored resolved (an alias
-- used when the endpoint was written is expanded to its ports, as in the policy model).
CREATE TABLE endpoints (
    service  TEXT NOT NULL REFERENCES services (id),
    seq      BIGINT NOT NULL,
    address  TEXT NOT NULL,
    protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 'any')),
    ports    TEXT NOT NULL,
    PRIMARY KEY (service, seq)
);

CREATE TABLE clients (
    id           TEXT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (id)
);
CREATE INDEX clients_organisation ON clients (organisation);

CREATE TABLE client_prefixes (
    client TEXT NOT NULL REFERENCES clients (id),
    seq    BIGINT NOT NULL,
    prefix TEXT NOT NULL,
    PRIMARY KEY (client, seq)
);

CREATE TABLE agreements (
    id      BIGINT PRIMARY KEY CHECK (id >= 0 AND id <= 4294967295),
    client  TEXT NOT NULL REFERENCES clients (id),
    service TEXT NOT NULL REFERENCES services (id),
    state   TEXT NOT NULL CHECK (state IN ('requested', 'approved', 'rejected', 'revoked')),
    expires TEXT,
    vlan    BIGINT CHECK (vlan >= 1 AND vlan <= 4094)
);
CREATE INDEX agreements_client ON agreements (client);
CREATE INDEX agreements_service ON agreements (service);

-- The policy file's [[infrastructure]] allow list, in file order.
CREATE TABLE infrastructure (
    seq      BIGINT PRIMARY KEY,
    prefix   TEXT NOT NULL,
    protocol TEXT NOT NULL,
    ports    TEXT NOT NULL
);

-- Hub routers following this database (written by the live sync, issue 3 phase 2).
CREATE TABLE routers (
    name             TEXT PRIMARY KEY,
    applied_revision BIGINT,
    last_sync        TEXT
);

-- One row: bumped by every change, in the change's own transaction.
CREATE TABLE revision (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

-- One row per changed object (seq numbers the rows of one revision), plus one summary row
-- for an import. organisation / peer_organisation: the organisations the object concerns
-- (for an agreement: the client's and the service's), for filtering.
CREATE TABLE audit (
    revision          BIGINT NOT NULL,
    seq               BIGINT NOT NULL,
    at                TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    actor             TEXT NOT NULL,
    action            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    object_key        TEXT NOT NULL,
    organisation      TEXT,
    peer_organisation TEXT,
    before_json       TEXT,
    after_json        TEXT,
    PRIMARY KEY (revision, seq)
);
CREATE INDEX audit_request ON audit (request_id);
CREATE INDEX audit_object ON audit (kind, object_key);
CREATE INDEX audit_organisation ON audit (organisation);
CREATE INDEX audit_peer_organisation ON audit (peer_organisation);
CREATE INDEX audit_at ON audit (at);
