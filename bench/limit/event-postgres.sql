-- What idemhook writes for one new payment event with the `inbox` and `payments` handlers, one
-- event per transaction: the dedupe record, the inbox row with the payload, the payment, the
-- order upsert. For `pgbench -M prepared -f` (bench/limit.sh). Orders spread over 1,000 ids,
-- as the bench tool's `--orders` default; the payload is the bench tool's generic body.
\set id random(1, 9000000000000000000)
\set ord random(0, 999)
\set amount random(1, 1000)
BEGIN;
INSERT INTO processed_events (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at, status, attempt_token)
  VALUES (sha256(convert_to('k' || :id, 'UTF8')), 'bench', 'payment_succeeded', 'evt_' || :id, sha256(convert_to('p' || :id, 'UTF8')), now(), now(), 'processed', substring(sha256(convert_to('t' || :id, 'UTF8')) from 1 for 16));
INSERT INTO inbox (key_digest, source, event_type, event_id, payload, received_at)
  VALUES (sha256(convert_to('k' || :id, 'UTF8')), 'bench', 'payment_succeeded', 'evt_' || :id, convert_to('{"id":"evt_' || :id || '","type":"payment_succeeded","created":1700000000,"data":{"order_id":"order_' || :ord || '","amount":' || :amount || ',"currency":"eur","customer":"cus_bench","description":"benchmark payment for idemhook"}}', 'UTF8'), now());
INSERT INTO payments (order_id, key_digest, amount, currency, created_at)
  VALUES ('order_' || :ord, sha256(convert_to('k' || :id, 'UTF8')), :amount, 'eur', now());
INSERT INTO orders (order_id, status, amount_paid, currency, created_at, updated_at)
  VALUES ('order_' || :ord, 'paid', :amount, 'eur', now(), now())
  ON CONFLICT (order_id) DO UPDATE SET amount_paid = orders.amount_paid + excluded.amount_paid, updated_at = excluded.updated_at;
END;
