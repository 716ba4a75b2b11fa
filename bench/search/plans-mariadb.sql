-- ANALYZE FORMAT=JSON (executes the statement; r_rows are rows read, r_total_time_ms the
-- time) of the statements `GET /events` sends, on a database seeded by seed-mariadb.sql.
-- The statement texts are the server's, from the general log; MariaDB optimizes each
-- execution of a prepared statement with its values, so literals here plan the same.
-- Page size 50: every stream asks for LIMIT 51.
--
-- Cases as in plans-postgres.sql: (a) first page, no filter (processed, rejected,
-- failed-only); (b) status=rejected; (c) source=stripe&status=processed; (d) no filter,
-- cursor 15 days back; (e) since/until, one hour 10 days back; (f) status=dead;
-- (g) type=event.type_07; (g2) a type nothing has: EXPLAIN only (it reads the whole table
-- through the clustered index: about ten minutes with a 128 MB buffer pool); (h) the IN
-- lookups; (i) status=failed&source=stripe.
--
-- Usage: mysql --raw DB < plans-mariadb.sql   (user variables are constants to the optimizer)
SELECT MAX(processed_at) INTO @t_end FROM processed_events;
SELECT processed_at, key_digest INTO @cur_t, @cur_d FROM processed_events
WHERE status = 'processed' AND processed_at <= @t_end - INTERVAL 15 DAY
ORDER BY processed_at DESC, key_digest DESC LIMIT 1;
SET @since = @t_end - INTERVAL 10 DAY, @until = @t_end - INTERVAL 10 DAY + INTERVAL 1 HOUR;
SELECT @t_end, @cur_t, HEX(@cur_d), @since, @until;

SELECT '(a) first page, no filter: processed, rejected, failed-only' AS `case`;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'processed' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'rejected' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `failed_attempts`.`key_digest`, `failed_attempts`.`last_failed_at` FROM `failed_attempts` WHERE NOT EXISTS(SELECT 1 FROM `processed_events` WHERE `processed_events`.`key_digest` = `failed_attempts`.`key_digest`) ORDER BY `failed_attempts`.`last_failed_at` DESC, `failed_attempts`.`key_digest` DESC LIMIT 51;

SELECT '(b) status=rejected' AS `case`;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'rejected' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;

SELECT '(c) source=stripe&status=processed' AS `case`;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'processed' AND `processed_events`.`source` = 'stripe' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;

SELECT '(d) no filter, cursor 15 days back' AS `case`;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'processed' AND `processed_events`.`processed_at` <= @cur_t AND (`processed_events`.`processed_at` < @cur_t OR `processed_events`.`key_digest` < @cur_d) ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'rejected' AND `processed_events`.`processed_at` <= @cur_t AND (`processed_events`.`processed_at` < @cur_t OR `processed_events`.`key_digest` < @cur_d) ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `failed_attempts`.`key_digest`, `failed_attempts`.`last_failed_at` FROM `failed_attempts` WHERE (NOT EXISTS(SELECT 1 FROM `processed_events` WHERE `processed_events`.`key_digest` = `failed_attempts`.`key_digest`)) AND `failed_attempts`.`last_failed_at` <= @cur_t AND (`failed_attempts`.`last_failed_at` < @cur_t OR `failed_attempts`.`key_digest` < @cur_d) ORDER BY `failed_attempts`.`last_failed_at` DESC, `failed_attempts`.`key_digest` DESC LIMIT 51;

SELECT '(e) since/until: one hour, 10 days back' AS `case`;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'processed' AND `processed_events`.`processed_at` >= @since AND `processed_events`.`processed_at` < @until ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'rejected' AND `processed_events`.`processed_at` >= @since AND `processed_events`.`processed_at` < @until ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `failed_attempts`.`key_digest`, `failed_attempts`.`last_failed_at` FROM `failed_attempts` WHERE (NOT EXISTS(SELECT 1 FROM `processed_events` WHERE `processed_events`.`key_digest` = `failed_attempts`.`key_digest`)) AND `failed_attempts`.`last_failed_at` >= @since AND `failed_attempts`.`last_failed_at` < @until ORDER BY `failed_attempts`.`last_failed_at` DESC, `failed_attempts`.`key_digest` DESC LIMIT 51;

SELECT '(f) status=dead' AS `case`;
ANALYZE FORMAT=JSON SELECT `deliveries`.`key_digest`, `deliveries`.`created_at` FROM `deliveries` WHERE `deliveries`.`status` = 'dead' ORDER BY `deliveries`.`created_at` DESC, `deliveries`.`key_digest` DESC LIMIT 51;

SELECT '(g) type=event.type_07 (residual filter)' AS `case`;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'processed' AND `processed_events`.`event_type` = 'event.type_07' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'rejected' AND `processed_events`.`event_type` = 'event.type_07' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;
ANALYZE FORMAT=JSON SELECT `failed_attempts`.`key_digest`, `failed_attempts`.`last_failed_at` FROM `failed_attempts` WHERE (NOT EXISTS(SELECT 1 FROM `processed_events` WHERE `processed_events`.`key_digest` = `failed_attempts`.`key_digest`)) AND `failed_attempts`.`event_type` = 'event.type_07' ORDER BY `failed_attempts`.`last_failed_at` DESC, `failed_attempts`.`key_digest` DESC LIMIT 51;

SELECT '(g2) type=no.such.type: EXPLAIN only (see above)' AS `case`;
EXPLAIN SELECT `processed_events`.`key_digest`, `processed_events`.`processed_at` FROM `processed_events` WHERE `processed_events`.`status` = 'processed' AND `processed_events`.`event_type` = 'no.such.type' ORDER BY `processed_events`.`processed_at` DESC, `processed_events`.`key_digest` DESC LIMIT 51;

SELECT '(h) the IN lookups of page (a) (processed, failed) and of page (f) (deliveries)' AS `case`;
SELECT GROUP_CONCAT(CONCAT('X''', HEX(key_digest), '''') SEPARATOR ', ') INTO @page
FROM (SELECT key_digest FROM processed_events WHERE status = 'processed'
      ORDER BY processed_at DESC, key_digest DESC LIMIT 50) p;
SELECT GROUP_CONCAT(CONCAT('X''', HEX(key_digest), '''') SEPARATOR ', ') INTO @dpage
FROM (SELECT key_digest FROM deliveries WHERE status = 'dead'
      ORDER BY created_at DESC, key_digest DESC LIMIT 50) p;
SET @q = CONCAT('ANALYZE FORMAT=JSON SELECT `processed_events`.`key_digest`, `processed_events`.`source`, `processed_events`.`event_type`, `processed_events`.`event_id`, `processed_events`.`payload_sha256`, `processed_events`.`signed_key`, `processed_events`.`received_at`, `processed_events`.`processed_at`, `processed_events`.`status`, `processed_events`.`reason`, `processed_events`.`attempt_token` FROM `processed_events` WHERE `processed_events`.`key_digest` IN (', @page, ')');
PREPARE s FROM @q; EXECUTE s; DEALLOCATE PREPARE s;
SET @q = CONCAT('ANALYZE FORMAT=JSON SELECT `failed_attempts`.`key_digest`, `failed_attempts`.`source`, `failed_attempts`.`event_type`, `failed_attempts`.`event_id`, `failed_attempts`.`payload_sha256`, `failed_attempts`.`attempts`, `failed_attempts`.`last_error`, `failed_attempts`.`first_failed_at`, `failed_attempts`.`last_failed_at` FROM `failed_attempts` WHERE `failed_attempts`.`key_digest` IN (', @page, ')');
PREPARE s FROM @q; EXECUTE s; DEALLOCATE PREPARE s;
SET @q = CONCAT('ANALYZE FORMAT=JSON SELECT `deliveries`.`id`, `deliveries`.`key_digest`, `deliveries`.`source`, `deliveries`.`event_type`, `deliveries`.`event_id`, `deliveries`.`content_type`, `deliveries`.`payload`, `deliveries`.`ordering_key`, `deliveries`.`status`, `deliveries`.`attempts`, `deliveries`.`next_attempt_at`, `deliveries`.`lease_until`, `deliveries`.`lease_token`, `deliveries`.`last_status`, `deliveries`.`last_error`, `deliveries`.`created_at`, `deliveries`.`delivered_at` FROM `deliveries` WHERE `deliveries`.`key_digest` IN (', @dpage, ')');
PREPARE s FROM @q; EXECUTE s; DEALLOCATE PREPARE s;

SELECT '(i) status=failed&source=stripe' AS `case`;
ANALYZE FORMAT=JSON SELECT `failed_attempts`.`key_digest`, `failed_attempts`.`last_failed_at` FROM `failed_attempts` WHERE (NOT EXISTS(SELECT 1 FROM `processed_events` WHERE `processed_events`.`key_digest` = `failed_attempts`.`key_digest`)) AND `failed_attempts`.`source` = 'stripe' ORDER BY `failed_attempts`.`last_failed_at` DESC, `failed_attempts`.`key_digest` DESC LIMIT 51;
