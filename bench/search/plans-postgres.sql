-- EXPLAIN (ANALYZE, BUFFERS) of the statements `GET /events` sends, on a database seeded by
-- seed-postgres.sql. The statement texts are copied verbatim from the server's log
-- (log_min_duration_statement = 0; sqlx prepares them, sea-query writes them), and run here
-- as prepared statements with the same parameters, so the planner sees what it sees from
-- the server. Page size 50: every stream asks for LIMIT 51.
--
-- Cases: (a) first page, no filter: processed + rejected + failed-only streams;
-- (b) status=rejected; (c) source=stripe&status=processed; (d) no filter, cursor 15 days
-- back; (e) since/until, a one-hour window 10 days back; (f) status=dead (deliveries);
-- (g) type=event.type_07 only (residual filter); (g2) a type nothing has (worst case);
-- (h) the three IN lookups that read a page whole; (i) status=failed&source=stripe;
-- then the stream statements again with generic plans (what a connection may switch to
-- after five executions of a prepared statement).
--
-- Usage: psql -X -v ON_ERROR_STOP=1 -d DB -f plans-postgres.sql
\pset pager off
-- JIT stays on (the default), as in the server's sessions.

-- Anchors, from the data: the newest event, a cursor 15 days back (the last item of a page
-- ending there, as `next_cursor` would name it), a one-hour window 10 days back.
SELECT max(processed_at) AS t_end FROM processed_events \gset
SELECT processed_at AS cur_t, '\x' || encode(key_digest, 'hex') AS cur_d
FROM processed_events
WHERE status = 'processed' AND processed_at <= timestamptz :'t_end' - interval '15 days'
ORDER BY processed_at DESC, key_digest DESC LIMIT 1 \gset
SELECT timestamptz :'t_end' - interval '10 days' AS since,
       timestamptz :'t_end' - interval '10 days' + interval '1 hour' AS until \gset
\echo t_end = :t_end, cursor = :cur_t / :cur_d, window = [:since, :until)

-- The stream statements, verbatim.
PREPARE settled(text, int8) AS SELECT "processed_events"."key_digest", "processed_events"."processed_at" FROM "processed_events" WHERE "processed_events"."status" = $1 ORDER BY "processed_events"."processed_at" DESC, "processed_events"."key_digest" DESC LIMIT $2;
PREPARE settled_source(text, text, int8) AS SELECT "processed_events"."key_digest", "processed_events"."processed_at" FROM "processed_events" WHERE "processed_events"."status" = $1 AND "processed_events"."source" = $2 ORDER BY "processed_events"."processed_at" DESC, "processed_events"."key_digest" DESC LIMIT $3;
PREPARE settled_type(text, text, int8) AS SELECT "processed_events"."key_digest", "processed_events"."processed_at" FROM "processed_events" WHERE "processed_events"."status" = $1 AND "processed_events"."event_type" = $2 ORDER BY "processed_events"."processed_at" DESC, "processed_events"."key_digest" DESC LIMIT $3;
PREPARE settled_cursor(text, timestamptz, timestamptz, bytea, int8) AS SELECT "processed_events"."key_digest", "processed_events"."processed_at" FROM "processed_events" WHERE "processed_events"."status" = $1 AND "processed_events"."processed_at" <= $2 AND ("processed_events"."processed_at" < $3 OR "processed_events"."key_digest" < $4) ORDER BY "processed_events"."processed_at" DESC, "processed_events"."key_digest" DESC LIMIT $5;
PREPARE settled_window(text, timestamptz, timestamptz, int8) AS SELECT "processed_events"."key_digest", "processed_events"."processed_at" FROM "processed_events" WHERE "processed_events"."status" = $1 AND "processed_events"."processed_at" >= $2 AND "processed_events"."processed_at" < $3 ORDER BY "processed_events"."processed_at" DESC, "processed_events"."key_digest" DESC LIMIT $4;
PREPARE failed(int4, int8) AS SELECT "failed_attempts"."key_digest", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE NOT EXISTS(SELECT $1 FROM "processed_events" WHERE "processed_events"."key_digest" = "failed_attempts"."key_digest") ORDER BY "failed_attempts"."last_failed_at" DESC, "failed_attempts"."key_digest" DESC LIMIT $2;
PREPARE failed_source(int4, text, int8) AS SELECT "failed_attempts"."key_digest", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE (NOT EXISTS(SELECT $1 FROM "processed_events" WHERE "processed_events"."key_digest" = "failed_attempts"."key_digest")) AND "failed_attempts"."source" = $2 ORDER BY "failed_attempts"."last_failed_at" DESC, "failed_attempts"."key_digest" DESC LIMIT $3;
PREPARE failed_type(int4, text, int8) AS SELECT "failed_attempts"."key_digest", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE (NOT EXISTS(SELECT $1 FROM "processed_events" WHERE "processed_events"."key_digest" = "failed_attempts"."key_digest")) AND "failed_attempts"."event_type" = $2 ORDER BY "failed_attempts"."last_failed_at" DESC, "failed_attempts"."key_digest" DESC LIMIT $3;
PREPARE failed_cursor(int4, timestamptz, timestamptz, bytea, int8) AS SELECT "failed_attempts"."key_digest", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE (NOT EXISTS(SELECT $1 FROM "processed_events" WHERE "processed_events"."key_digest" = "failed_attempts"."key_digest")) AND "failed_attempts"."last_failed_at" <= $2 AND ("failed_attempts"."last_failed_at" < $3 OR "failed_attempts"."key_digest" < $4) ORDER BY "failed_attempts"."last_failed_at" DESC, "failed_attempts"."key_digest" DESC LIMIT $5;
PREPARE failed_window(int4, timestamptz, timestamptz, int8) AS SELECT "failed_attempts"."key_digest", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE (NOT EXISTS(SELECT $1 FROM "processed_events" WHERE "processed_events"."key_digest" = "failed_attempts"."key_digest")) AND "failed_attempts"."last_failed_at" >= $2 AND "failed_attempts"."last_failed_at" < $3 ORDER BY "failed_attempts"."last_failed_at" DESC, "failed_attempts"."key_digest" DESC LIMIT $4;
-- Pending and dead: the state written as a literal, with the partial indexes' predicate
-- (migration m20261129_000002); delivered: bound, walked on (created_at, key_digest).
PREPARE deliveries_dead(int8) AS SELECT "deliveries"."key_digest", "deliveries"."created_at" FROM "deliveries" WHERE "deliveries"."status" = 'dead' AND "deliveries"."status" <> 'delivered' ORDER BY "deliveries"."created_at" DESC, "deliveries"."key_digest" DESC LIMIT $1;
PREPARE deliveries_pending_source(text, int8) AS SELECT "deliveries"."key_digest", "deliveries"."created_at" FROM "deliveries" WHERE "deliveries"."status" = 'pending' AND "deliveries"."status" <> 'delivered' AND "deliveries"."source" = $1 ORDER BY "deliveries"."created_at" DESC, "deliveries"."key_digest" DESC LIMIT $2;
PREPARE deliveries(text, int8) AS SELECT "deliveries"."key_digest", "deliveries"."created_at" FROM "deliveries" WHERE "deliveries"."status" = $1 ORDER BY "deliveries"."created_at" DESC, "deliveries"."key_digest" DESC LIMIT $2;

\echo
\echo ==== (a) first page, no filter: processed, rejected, failed-only ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled('processed', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled('rejected', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed(1, 51);

\echo ==== (b) status=rejected ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled('rejected', 51);

\echo ==== (c) source=stripe&status=processed ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_source('processed', 'stripe', 51);

\echo ==== (d) no filter, cursor 15 days back ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_cursor('processed', :'cur_t', :'cur_t', :'cur_d', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_cursor('rejected', :'cur_t', :'cur_t', :'cur_d', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed_cursor(1, :'cur_t', :'cur_t', :'cur_d', 51);

\echo ==== (e) since/until: one hour, 10 days back ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_window('processed', :'since', :'until', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_window('rejected', :'since', :'until', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed_window(1, :'since', :'until', 51);

\echo ==== (f) status=dead; (f2) status=delivery_pending&source=std; (f3) status=delivered ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE deliveries_dead(51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE deliveries_pending_source('std', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE deliveries('delivered', 51);
\echo ==== (f4) the backlog gauges (every 5 s, and the console) ====
EXPLAIN (ANALYZE, BUFFERS) SELECT "deliveries"."source", "deliveries"."status", COUNT("deliveries"."key_digest") AS "n", MIN("deliveries"."created_at") AS "oldest" FROM "deliveries" WHERE "deliveries"."status" IN ('pending', 'dead') AND "deliveries"."status" <> 'delivered' GROUP BY "deliveries"."source", "deliveries"."status";

\echo ==== (g) type=event.type_07 (residual filter) ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_type('processed', 'event.type_07', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_type('rejected', 'event.type_07', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed_type(1, 'event.type_07', 51);

\echo ==== (g2) type=no.such.type: the residual filter never matches (worst case) ====
SET statement_timeout = '120s';
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_type('processed', 'no.such.type', 51);
RESET statement_timeout;

\echo ==== (h) the IN lookups of page (a) ====
SELECT string_agg(format('%L', '\x' || encode(key_digest, 'hex')), ', ') AS page
FROM (SELECT key_digest FROM processed_events WHERE status = 'processed'
      ORDER BY processed_at DESC, key_digest DESC LIMIT 50) p \gset
EXPLAIN (ANALYZE, BUFFERS) SELECT "processed_events"."key_digest", "processed_events"."source", "processed_events"."event_type", "processed_events"."event_id", "processed_events"."payload_sha256", "processed_events"."signed_key", "processed_events"."received_at", "processed_events"."processed_at", "processed_events"."status", "processed_events"."reason", "processed_events"."attempt_token" FROM "processed_events" WHERE "processed_events"."key_digest" IN (:page);
EXPLAIN (ANALYZE, BUFFERS) SELECT "failed_attempts"."key_digest", "failed_attempts"."source", "failed_attempts"."event_type", "failed_attempts"."event_id", "failed_attempts"."payload_sha256", "failed_attempts"."attempts", "failed_attempts"."last_error", "failed_attempts"."first_failed_at", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE "failed_attempts"."key_digest" IN (:page);
-- deliveries: the page of (f), so that the 50 rows exist
SELECT string_agg(format('%L', '\x' || encode(key_digest, 'hex')), ', ') AS dpage
FROM (SELECT key_digest FROM deliveries WHERE status = 'dead'
      ORDER BY created_at DESC, key_digest DESC LIMIT 50) p \gset
EXPLAIN (ANALYZE, BUFFERS) SELECT "deliveries"."id", "deliveries"."key_digest", "deliveries"."source", "deliveries"."event_type", "deliveries"."event_id", "deliveries"."content_type", "deliveries"."payload", "deliveries"."ordering_key", "deliveries"."status", "deliveries"."attempts", "deliveries"."next_attempt_at", "deliveries"."lease_until", "deliveries"."lease_token", "deliveries"."last_status", "deliveries"."last_error", "deliveries"."created_at", "deliveries"."delivered_at" FROM "deliveries" WHERE "deliveries"."key_digest" IN (:dpage);

\echo ==== (i) status=failed&source=stripe ====
EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed_source(1, 'stripe', 51);

\echo ==== (x) NOT what the server sends: the failed-only stream with the NOT EXISTS kept as a
\echo ====     subplan (OFFSET 0), so the planner cannot misestimate the anti-join ====
EXPLAIN (ANALYZE, BUFFERS) SELECT "failed_attempts"."key_digest", "failed_attempts"."last_failed_at" FROM "failed_attempts" WHERE NOT EXISTS(SELECT 1 FROM "processed_events" WHERE "processed_events"."key_digest" = "failed_attempts"."key_digest" OFFSET 0) ORDER BY "failed_attempts"."last_failed_at" DESC, "failed_attempts"."key_digest" DESC LIMIT 51;

\echo ==== generic plans (plan_cache_mode = force_generic_plan) ====
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled('rejected', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_source('processed', 'stripe', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_cursor('processed', :'cur_t', :'cur_t', :'cur_d', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_window('processed', :'since', :'until', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE settled_type('rejected', 'event.type_07', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed(1, 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE deliveries_dead(51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE deliveries_pending_source('std', 51);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE deliveries('delivered', 51);
RESET plan_cache_mode;
