-- Seed an idemhook PostgreSQL database (schema from `idemhook migrate up`) for the
-- `GET /events` plan benchmark: set-based, one psql session.
--
--   processed_events  :rows rows (default 10,000,000) over the 30 days before :'t_end',
--                     one every 30 d / :rows, in time order (as they arrive); 5 sources
--                     (source = i mod 5), 20 event types and ~0.1 % `rejected` (both drawn
--                     from bytes of the digest, so independent of source and time);
--                     key_digest = sha256('k' || i).
--   failed_attempts   50,000: 25,000 whose event was later processed (same digest, failed
--                     just before), 25,000 with no processed row (digest sha256('f' || j)).
--   deliveries        1,000,000 for source `std` (every i with i mod 10 = 4, never rejected),
--                     0.5 % dead, 0.5 % pending, the rest delivered; created_at = processed_at.
--
-- The list indexes are dropped during the load and rebuilt afterwards from their own saved
-- definitions (pg_get_indexdef / pg_get_constraintdef), which is much faster than 10 M
-- random inserts into the digest indexes. Rebuilt indexes are denser than ones grown by
-- inserts: a live table's are somewhat larger (the pages read per query barely change).
--
-- Usage: psql -v ON_ERROR_STOP=1 [-v rows=N] [-v t_end="'2026-11-29 09:00:00+00'"] -d DB -f seed-postgres.sql
\if :{?rows}
\else
  \set rows 10000000
\endif
\if :{?t_end}
\else
  \set t_end 'date_trunc(''minute'', now())'
\endif
SELECT (:t_end)::timestamptz AS t_end_fixed \gset
\echo t_end = :t_end_fixed
\timing on
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SET max_parallel_maintenance_workers = 0;  -- be frugal: one core for index builds
SET jit = off;

TRUNCATE processed_events, failed_attempts, deliveries;

-- Every index and unique/primary constraint of the three tables, to rebuild after the load.
CREATE TEMP TABLE saved_indexes AS
SELECT c.conrelid::regclass::text AS tbl, c.conname::text AS name,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS ddl,
       format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_ddl
FROM pg_constraint c
WHERE c.conrelid IN ('processed_events'::regclass, 'failed_attempts'::regclass, 'deliveries'::regclass)
  AND c.contype IN ('p', 'u')
UNION ALL
SELECT i.indrelid::regclass::text, ci.relname::text, pg_get_indexdef(i.indexrelid),
       format('DROP INDEX %I', ci.relname)
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
WHERE i.indrelid IN ('processed_events'::regclass, 'failed_attempts'::regclass, 'deliveries'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u'));

SELECT tbl, name, ddl FROM saved_indexes ORDER BY tbl, name;
SELECT drop_ddl FROM saved_indexes \gexec

-- processed_events
INSERT INTO processed_events
  (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at,
   signed_key, status, reason, attempt_token)
SELECT d,
       (ARRAY['stripe','github','shopify','demo','std'])[1 + i % 5],
       'event.type_' || lpad((get_byte(d, 3) % 20)::text, 2, '0'),
       'evt_' || i,
       '\xb7a9ee8b1f0c1f6b2a9c2fb04fb6b7bb3f8b8c6ba4a7d9a4e2e0e45f3b8a3d9e'::bytea,
       t - interval '40 milliseconds',
       t,
       NULL,
       CASE WHEN rejected THEN 'rejected' ELSE 'processed' END,
       CASE WHEN rejected THEN 'handler rejected: invalid amount' END,
       NULL
FROM generate_series(1, :rows) AS i,
     LATERAL (SELECT sha256(('k' || i)::bytea) AS d) AS k,
     LATERAL (SELECT (:'t_end_fixed')::timestamptz - (interval '30 days' / :rows) * (:rows - i) AS t,
                     (get_byte(d, 1) * 256 + get_byte(d, 2)) < 73 AND i % 10 <> 4 AS rejected) AS x;

-- failed_attempts: 25,000 later processed (same digest as a processed row, failed 2 s before)
INSERT INTO failed_attempts
  (key_digest, source, event_type, event_id, payload_sha256, attempts, last_error,
   first_failed_at, last_failed_at)
SELECT p.key_digest, p.source, p.event_type, p.event_id, p.payload_sha256, 2,
       'handler error: connection reset', p.received_at - interval '60 seconds',
       p.processed_at - interval '2 seconds'
FROM generate_series(1, 25000) AS j
JOIN processed_events p ON p.key_digest = sha256(('k' || (j * (:rows / 25000) - j % 5))::bytea);

-- failed_attempts: 25,000 never processed, spread over the same 30 days
INSERT INTO failed_attempts
  (key_digest, source, event_type, event_id, payload_sha256, attempts, last_error,
   first_failed_at, last_failed_at)
SELECT d,
       (ARRAY['stripe','github','shopify','demo','std'])[1 + j % 5],
       'event.type_' || lpad((get_byte(d, 3) % 20)::text, 2, '0'),
       'evt_failed_' || j,
       '\xb7a9ee8b1f0c1f6b2a9c2fb04fb6b7bb3f8b8c6ba4a7d9a4e2e0e45f3b8a3d9e'::bytea,
       3, 'handler error: upstream 503',
       t - interval '10 minutes', t
FROM generate_series(1, 25000) AS j,
     LATERAL (SELECT sha256(('f' || j)::bytea) AS d) AS k,
     LATERAL (SELECT (:'t_end_fixed')::timestamptz - (interval '30 days' / 25000) * (25000 - j)
                     - interval '1 second' AS t) AS x;

-- deliveries: 1,000,000 for `std` (i mod 10 = 4; such rows are never rejected)
INSERT INTO deliveries
  (key_digest, source, event_type, event_id, content_type, payload, ordering_key, status,
   attempts, next_attempt_at, lease_until, lease_token, last_status, last_error, created_at,
   delivered_at)
SELECT d, 'std',
       'event.type_' || lpad((get_byte(d, 3) % 20)::text, 2, '0'),
       'evt_' || i, 'application/json', '\x7b7d'::bytea, NULL,
       st,
       CASE st WHEN 'dead' THEN 10 WHEN 'pending' THEN 3 ELSE 1 END,
       CASE st WHEN 'pending' THEN t + interval '1 hour' ELSE t END,
       NULL, NULL,
       CASE st WHEN 'delivered' THEN 200 ELSE 503 END,
       CASE st WHEN 'delivered' THEN NULL ELSE 'app answered 503' END,
       t,
       CASE st WHEN 'delivered' THEN t + interval '150 milliseconds' END
FROM generate_series(0, 999999) AS j,
     LATERAL (SELECT 10 * j + 4 AS i) AS ii,
     LATERAL (SELECT sha256(('k' || i)::bytea) AS d) AS k,
     LATERAL (SELECT (:'t_end_fixed')::timestamptz - (interval '30 days' / :rows) * (:rows - i) AS t,
                     CASE WHEN (get_byte(d, 4) * 256 + get_byte(d, 5)) % 1000 < 5 THEN 'dead'
                          WHEN (get_byte(d, 4) * 256 + get_byte(d, 5)) % 1000 < 10 THEN 'pending'
                          ELSE 'delivered' END AS st) AS x;

-- Rebuild every index exactly as the migrations defined it.
SELECT ddl FROM saved_indexes ORDER BY name = 'processed_events_pkey' DESC, tbl, name \gexec

VACUUM (ANALYZE) processed_events;
VACUUM (ANALYZE) failed_attempts;
VACUUM (ANALYZE) deliveries;

SELECT status, count(*) FROM processed_events GROUP BY status;
SELECT count(*) AS failed_total,
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM processed_events p
                                          WHERE p.key_digest = f.key_digest)) AS failed_only
FROM failed_attempts f;
SELECT status, count(*) FROM deliveries GROUP BY status;
SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS size
FROM pg_class
WHERE relname IN ('processed_events', 'failed_attempts', 'deliveries')
   OR relname IN (SELECT name FROM saved_indexes)
ORDER BY pg_relation_size(oid) DESC;
