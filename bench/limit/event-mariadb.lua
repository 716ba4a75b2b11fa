-- What idemhook writes for one new payment event with the `inbox` and `payments` handlers, one
-- event per transaction, on MariaDB/MySQL: the dedupe record, the inbox row with the payload,
-- the payment, the order upsert (orders spread over 1,000 ids, the bench tool's payload).
-- For `sysbench event-mariadb.lua run` (bench/limit.sh mariadb); each statement is sent as
-- text, which for these single-row writes costs the server no more than a prepared one.
function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
end

function thread_done()
  con:disconnect()
end

function event()
  local id = string.format("%d_%d_%d", sysbench.tid, os.time(), sysbench.rand.uniform(1, 2000000000))
  local ord = sysbench.rand.uniform(0, 999)
  local amount = sysbench.rand.uniform(1, 1000)
  local key = string.format("UNHEX(SHA2('k%s', 256))", id)
  local payload = string.format(
    '{"id":"evt_%s","type":"payment_succeeded","created":1700000000,"data":{"order_id":"order_%d","amount":%d,"currency":"eur","customer":"cus_bench","description":"benchmark payment for idemhook"}}',
    id, ord, amount)
  con:query("BEGIN")
  con:query(string.format(
    "INSERT INTO processed_events (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at, status, attempt_token) VALUES (%s, 'bench', 'payment_succeeded', 'evt_%s', UNHEX(SHA2('p%s', 256)), NOW(6), NOW(6), 'processed', UNHEX(LEFT(SHA2('t%s', 256), 32)))",
    key, id, id, id))
  con:query(string.format(
    "INSERT INTO inbox (key_digest, source, event_type, event_id, payload, received_at) VALUES (%s, 'bench', 'payment_succeeded', 'evt_%s', '%s', NOW(6))",
    key, id, payload))
  con:query(string.format(
    "INSERT INTO payments (order_id, key_digest, amount, currency, created_at) VALUES ('order_%d', %s, %d, 'eur', NOW(6))",
    ord, key, amount))
  con:query(string.format(
    "INSERT INTO orders (order_id, status, amount_paid, currency, created_at, updated_at) VALUES ('order_%d', 'paid', %d, 'eur', NOW(6), NOW(6)) ON DUPLICATE KEY UPDATE amount_paid = amount_paid + VALUES(amount_paid), updated_at = VALUES(updated_at)",
    ord, amount))
  con:query("COMMIT")
end
