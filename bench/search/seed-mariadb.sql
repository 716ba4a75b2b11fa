-- Seed an idemhook MariaDB database (schema from `idemhook migrate up`) for the
-- `GET /events` plan benchmark: the same data as seed-postgres.sql, set-based, from the
-- SEQUENCE engine.
--
--   processed_events  @rows rows (default 10,000,000) over the 30 days before @t_end (UTC),
--                     one every 30 d / @rows, in time order; 5 sources (i mod 5), 20 event
--                     types and ~0.1 % `rejected` drawn from bytes of the digest;
--                     key_digest = UNHEX(SHA2(CONCAT('k', i), 256)).
--   failed_attempts   50,000: 25,000 whose event was later processed, 25,000 never processed.
--   deliveries        1,000,000 for `std` (i mod 10 = 4, never rejected): 0.5 % dead,
--                     0.5 % pending, the rest delivered.
--
-- InnoDB clusters a table by its primary key, and processed_events' key is a random digest:
-- inserting 10 M rows in that order through a 128 MB buffer pool (O_DIRECT) takes hours.
-- So the primary key and the secondary indexes are dropped for the load and added back in
-- one ALTER (one sorted rebuild), with the exact names and columns of the migrations; the
-- end of this file prints SHOW CREATE TABLE to compare with a freshly migrated database.
--
-- Usage: mysql DB < seed-mariadb.sql, or to choose the size or the end time:
--   { echo "SET @rows = 1000000, @t_end = '2026-11-29 09:00:00';"; cat seed-mariadb.sql; } | mysql DB
-- The sequence table used covers at most 10,000,000 rows.
SET @rows = COALESCE(@rows, 10000000);
SET @t_end = COALESCE(@t_end, DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:00'));
SET @step_us = 2592000000000 DIV @rows;  -- 30 days in microseconds, per row
SELECT @rows AS `rows`, @t_end AS t_end, @step_us AS step_us;

SET SESSION unique_checks = 0;
SET SESSION foreign_key_checks = 0;
SET SESSION sql_log_bin = 0;

TRUNCATE processed_events;
TRUNCATE failed_attempts;
TRUNCATE deliveries;

ALTER TABLE processed_events
  DROP PRIMARY KEY,
  DROP INDEX idx_processed_events_signed_key,
  DROP INDEX idx_processed_events_processed_at,
  DROP INDEX idx_processed_events_status_recent,
  DROP INDEX idx_processed_events_source_recent;
ALTER TABLE deliveries
  DROP INDEX key_digest,
  DROP INDEX idx_deliveries_due,
  DROP INDEX idx_deliveries_ordering,
  DROP INDEX idx_deliveries_created_at,
  DROP INDEX idx_deliveries_status_recent,
  DROP INDEX idx_deliveries_source_recent;

-- processed_events, in batches of 1,000,000 (smaller transactions, same rows)
DELIMITER //
CREATE OR REPLACE PROCEDURE seed_processed_events()
BEGIN
  DECLARE lo BIGINT DEFAULT 1;
  WHILE lo <= @rows DO
    INSERT INTO processed_events
      (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at,
       signed_key, status, reason, attempt_token)
    SELECT d,
           ELT(1 + i % 5, 'stripe', 'github', 'shopify', 'demo', 'std'),
           CONCAT('event.type_', LPAD(ASCII(SUBSTR(d, 4, 1)) % 20, 2, '0')),
           CONCAT('evt_', i),
           UNHEX('b7a9ee8b1f0c1f6b2a9c2fb04fb6b7bb3f8b8c6ba4a7d9a4e2e0e45f3b8a3d9e'),
           t - INTERVAL 40000 MICROSECOND,
           t,
           NULL,
           IF(rejected, 'rejected', 'processed'),
           IF(rejected, 'handler rejected: invalid amount', NULL),
           NULL
    FROM (SELECT i, d,
                 TIMESTAMPADD(MICROSECOND, -(@rows - i) * @step_us, CAST(@t_end AS DATETIME(6))) AS t,
                 (ASCII(SUBSTR(d, 2, 1)) * 256 + ASCII(SUBSTR(d, 3, 1))) < 73 AND i % 10 <> 4 AS rejected
          FROM (SELECT CAST(seq AS SIGNED) AS i, UNHEX(SHA2(CONCAT('k', seq), 256)) AS d
                FROM seq_1_to_10000000
                WHERE seq BETWEEN lo AND LEAST(lo + 999999, @rows)) s) x;
    COMMIT;
    SET lo = lo + 1000000;
  END WHILE;
END//
DELIMITER ;
SET autocommit = 0;
CALL seed_processed_events();
COMMIT;
SET autocommit = 1;
DROP PROCEDURE seed_processed_events;

ALTER TABLE processed_events
  ADD PRIMARY KEY (key_digest),
  ADD UNIQUE KEY idx_processed_events_signed_key (signed_key),
  ADD KEY idx_processed_events_processed_at (processed_at),
  ADD KEY idx_processed_events_status_recent (status, processed_at, key_digest),
  ADD KEY idx_processed_events_source_recent (source, status, processed_at, key_digest);

-- failed_attempts: 25,000 later processed (same digest as a processed row, failed 2 s before)
INSERT INTO failed_attempts
  (key_digest, source, event_type, event_id, payload_sha256, attempts, last_error,
   first_failed_at, last_failed_at)
SELECT p.key_digest, p.source, p.event_type, p.event_id, p.payload_sha256, 2,
       'handler error: connection reset', p.received_at - INTERVAL 60 SECOND,
       p.processed_at - INTERVAL 2 SECOND
FROM seq_1_to_25000 j
JOIN processed_events p
  ON p.key_digest = UNHEX(SHA2(CONCAT('k', j.seq * (@rows DIV 25000) - j.seq % 5), 256));

-- failed_attempts: 25,000 never processed, spread over the same 30 days
INSERT INTO failed_attempts
  (key_digest, source, event_type, event_id, payload_sha256, attempts, last_error,
   first_failed_at, last_failed_at)
SELECT d,
       ELT(1 + j % 5, 'stripe', 'github', 'shopify', 'demo', 'std'),
       CONCAT('event.type_', LPAD(ASCII(SUBSTR(d, 4, 1)) % 20, 2, '0')),
       CONCAT('evt_failed_', j),
       UNHEX('b7a9ee8b1f0c1f6b2a9c2fb04fb6b7bb3f8b8c6ba4a7d9a4e2e0e45f3b8a3d9e'),
       3, 'handler error: upstream 503',
       t - INTERVAL 10 MINUTE, t
FROM (SELECT CAST(seq AS SIGNED) AS j, UNHEX(SHA2(CONCAT('f', seq), 256)) AS d,
             TIMESTAMPADD(MICROSECOND, -(25000 - seq) * (2592000000000 DIV 25000) - 1000000,
                          CAST(@t_end AS DATETIME(6))) AS t
      FROM seq_1_to_25000) s;

-- deliveries: 1,000,000 for `std` (i mod 10 = 4; such rows are never rejected)
INSERT INTO deliveries
  (key_digest, source, event_type, event_id, content_type, payload, ordering_key, status,
   attempts, next_attempt_at, lease_until, lease_token, last_status, last_error, created_at,
   delivered_at)
SELECT d, 'std',
       CONCAT('event.type_', LPAD(ASCII(SUBSTR(d, 4, 1)) % 20, 2, '0')),
       CONCAT('evt_', i), 'application/json', '{}', NULL,
       st,
       CASE st WHEN 'dead' THEN 10 WHEN 'pending' THEN 3 ELSE 1 END,
       IF(st = 'pending', t + INTERVAL 1 HOUR, t),
       NULL, NULL,
       IF(st = 'delivered', 200, 503),
       IF(st = 'delivered', NULL, 'app answered 503'),
       t,
       IF(st = 'delivered', t + INTERVAL 150000 MICROSECOND, NULL)
FROM (SELECT i, d,
             TIMESTAMPADD(MICROSECOND, -(@rows - i) * @step_us, CAST(@t_end AS DATETIME(6))) AS t,
             CASE WHEN (ASCII(SUBSTR(d, 5, 1)) * 256 + ASCII(SUBSTR(d, 6, 1))) % 1000 < 5 THEN 'dead'
                  WHEN (ASCII(SUBSTR(d, 5, 1)) * 256 + ASCII(SUBSTR(d, 6, 1))) % 1000 < 10 THEN 'pending'
                  ELSE 'delivered' END AS st
      FROM (SELECT CAST(10 * seq + 4 AS SIGNED) AS i, UNHEX(SHA2(CONCAT('k', 10 * seq + 4), 256)) AS d
            FROM seq_0_to_999999) s) x;

ALTER TABLE deliveries
  ADD UNIQUE KEY key_digest (key_digest),
  ADD KEY idx_deliveries_due (source, status, next_attempt_at, id),
  ADD KEY idx_deliveries_ordering (ordering_key, status, id),
  ADD KEY idx_deliveries_created_at (created_at),
  ADD KEY idx_deliveries_status_recent (status, created_at, key_digest),
  ADD KEY idx_deliveries_source_recent (source, status, created_at, key_digest);

ANALYZE TABLE processed_events, failed_attempts, deliveries;

SELECT status, COUNT(*) FROM processed_events GROUP BY status;
SELECT COUNT(*) AS failed_total,
       SUM(NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.key_digest = f.key_digest)) AS failed_only
FROM failed_attempts f;
SELECT status, COUNT(*) FROM deliveries GROUP BY status;
SELECT table_name, index_name, ROUND(stat_value * @@innodb_page_size / 1048576) AS mib
FROM mysql.innodb_index_stats
WHERE database_name = DATABASE() AND stat_name = 'size'
  AND table_name IN ('processed_events', 'failed_attempts', 'deliveries')
ORDER BY stat_value DESC;
SHOW CREATE TABLE processed_events;
SHOW CREATE TABLE failed_attempts;
SHOW CREATE TABLE deliveries;
