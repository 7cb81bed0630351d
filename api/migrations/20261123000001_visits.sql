-- Visits, one row each. The id orders "recent" and is the handle clients get back.
CREATE TABLE visits (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    visited_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    task_id     TEXT NOT NULL,
    client_ip   TEXT,
    user_agent  TEXT,
    page        TEXT
);

-- The exact total without COUNT(*): a one-row counter kept by statement-level
-- triggers, so every writer (the API's batched INSERTs, psql, pgbench, a bulk
-- load) keeps it exact, and one multi-row INSERT costs one UPDATE of the hot row.
CREATE TABLE visit_totals (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    total     BIGINT NOT NULL CHECK (total >= 0)
);
INSERT INTO visit_totals (singleton, total) VALUES (TRUE, 0);

CREATE FUNCTION visit_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE visit_totals SET total = total + (SELECT count(*) FROM new_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION visit_totals_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE visit_totals SET total = total - (SELECT count(*) FROM old_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION visit_totals_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE visit_totals SET total = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER visits_count_insert AFTER INSERT ON visits
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION visit_totals_add();
CREATE TRIGGER visits_count_delete AFTER DELETE ON visits
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION visit_totals_sub();
CREATE TRIGGER visits_count_truncate AFTER TRUNCATE ON visits
    FOR EACH STATEMENT EXECUTE FUNCTION visit_totals_reset();
