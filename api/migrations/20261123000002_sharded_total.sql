-- The exact total, sharded. One counter row serialised every writer: a transaction holds the
-- row's lock until its commit has been flushed, so concurrent batches (and pgbench's clients)
-- queued on it and their WAL flushes could never overlap. Sixteen shards, one picked per
-- connection by backend pid, let transactions on different connections commit in parallel.
-- The total is the sum of 16 rows: still constant cost at any table size, and still exact,
-- because each transaction's rows and its shard update commit together.
-- `visit_totals` stays as a view with the same `total` column for readers and tools.

-- No insert may slip between reading the old counter and switching the triggers.
LOCK TABLE visits IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE visit_total_shards (
    shard SMALLINT PRIMARY KEY CHECK (shard BETWEEN 0 AND 15),
    -- One shard may go negative (a delete on a connection that inserted little); the sum cannot.
    total BIGINT NOT NULL
);
INSERT INTO visit_total_shards (shard, total)
SELECT g, CASE WHEN g = 0 THEN (SELECT total FROM visit_totals) ELSE 0 END
FROM generate_series(0, 15) g;

CREATE OR REPLACE FUNCTION visit_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE visit_total_shards SET total = total + (SELECT count(*) FROM new_rows)
    WHERE shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION visit_totals_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE visit_total_shards SET total = total - (SELECT count(*) FROM old_rows)
    WHERE shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION visit_totals_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE visit_total_shards SET total = 0;
    RETURN NULL;
END $$;

DROP TABLE visit_totals;
CREATE VIEW visit_totals AS SELECT sum(total)::BIGINT AS total FROM visit_total_shards;
