-- The batched physical limit: the same four writes as event-postgres.sql for 16 events per
-- transaction, as multi-row statements (one statement, data-modifying CTEs; orders summed per
-- id, as an upsert cannot touch a row twice in one statement, and in id order, so concurrent
-- batches lock orders in one order and never deadlock). Events/s = tps × 16.
BEGIN;
WITH e AS (
  SELECT n.id, (random() * 999)::int AS ord, 1 + (random() * 999)::int AS amount
  FROM (SELECT (random() * 9e18)::bigint AS id FROM generate_series(1, 16)) n
), pe AS (
  INSERT INTO processed_events (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at, status, attempt_token)
  SELECT sha256(convert_to('k' || id, 'UTF8')), 'bench', 'payment_succeeded', 'evt_' || id, sha256(convert_to('p' || id, 'UTF8')), now(), now(), 'processed', substring(sha256(convert_to('t' || id, 'UTF8')) from 1 for 16) FROM e
), ib AS (
  INSERT INTO inbox (key_digest, source, event_type, event_id, payload, received_at)
  SELECT sha256(convert_to('k' || id, 'UTF8')), 'bench', 'payment_succeeded', 'evt_' || id, convert_to('{"id":"evt_' || id || '","type":"payment_succeeded","created":1700000000,"data":{"order_id":"order_' || ord || '","amount":' || amount || ',"currency":"eur","customer":"cus_bench","description":"benchmark payment for idemhook"}}', 'UTF8'), now() FROM e
), pay AS (
  INSERT INTO payments (order_id, key_digest, amount, currency, created_at)
  SELECT 'order_' || ord, sha256(convert_to('k' || id, 'UTF8')), amount, 'eur', now() FROM e
)
INSERT INTO orders (order_id, status, amount_paid, currency, created_at, updated_at)
SELECT 'order_' || ord, 'paid', sum(amount), 'eur', now(), now() FROM e GROUP BY ord ORDER BY ord
ON CONFLICT (order_id) DO UPDATE SET amount_paid = orders.amount_paid + excluded.amount_paid, updated_at = excluded.updated_at;
END;
