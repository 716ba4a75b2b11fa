//! The payments handler: reading payments, summing per order, and the rules an order keeps.

use serde_json::json;

use super::*;

#[test]
fn reads_generic_and_stripe_payments() {
    let generic = json!({"data": {"order_id": "o1", "amount": 250, "currency": "eur"}});
    assert_eq!(
        parse("payment_succeeded", Some(&generic)).unwrap(),
        Some(Payment {
            order_id: "o1".into(),
            amount: 250,
            currency: "eur".into()
        })
    );
    let stripe = json!({"data": {"object": {
        "amount_received": 999, "currency": "usd", "metadata": {"order_id": "o2"}
    }}});
    assert_eq!(
        parse("payment_intent.succeeded", Some(&stripe)).unwrap(),
        Some(Payment {
            order_id: "o2".into(),
            amount: 999,
            currency: "usd".into()
        })
    );
}

#[test]
fn other_types_are_ignored_and_bad_fields_fail() {
    assert_eq!(parse("customer.created", None).unwrap(), None);
    for bad in [
        json!({"data": {"order_id": "o1", "amount": "250", "currency": "eur"}}),
        json!({"data": {"order_id": 7, "amount": 250, "currency": "eur"}}),
        json!({"data": {"order_id": "o1", "amount": -5, "currency": "eur"}}),
        json!({"data": {"order_id": "o1", "amount": 1.5, "currency": "eur"}}),
        json!({"data": {"amount": 250, "currency": "eur"}}),
    ] {
        assert!(parse("payment_succeeded", Some(&bad)).is_err(), "{bad}");
    }
    assert!(parse("payment_succeeded", None).is_err());
}

/// The rows the order upsert is built from: one per order, amounts summed, orders sorted,
/// the first payment's currency, and an overflow refused rather than wrapped.
#[test]
fn order_totals_sum_per_order_in_order() {
    let p = |order: &str, amount, currency: &str| Payment {
        order_id: order.to_owned(),
        amount,
        currency: currency.to_owned(),
    };
    let payments = [p("o2", 7, "usd"), p("o1", 100, "eur"), p("o1", 20, "eur")];
    let totals: Vec<_> = order_totals(payments.iter()).unwrap().into_iter().collect();
    assert_eq!(totals, [("o1", (120, "eur")), ("o2", (7, "usd"))]);
    // 250 eur + 100 usd is not "350 eur": refused for good, not summed.
    let mixed = [p("o1", 250, "eur"), p("o1", 100, "usd")];
    assert!(matches!(
        order_totals(mixed.iter()),
        Err(HandlerError::Reject(_))
    ));
    let huge = [p("o1", i64::MAX, "eur"), p("o1", 1, "eur")];
    assert!(matches!(
        order_totals(huge.iter()),
        Err(HandlerError::Reject(_))
    ));
}

/// A batch touching one order twice must add both amounts (one upsert row per order) and
/// leave other event types alone; a second batch adds to the existing rows.
#[tokio::test]
async fn a_batch_sums_payments_per_order() {
    use sea_orm::TransactionTrait;
    let settings = crate::config::Settings::default();
    let db = crate::db::connect(crate::config::IN_MEMORY_DATABASE_URL, &settings)
        .await
        .unwrap();
    crate::db::migrate(crate::config::IN_MEMORY_DATABASE_URL, &db)
        .await
        .unwrap();
    let (a, b, c) = (
        Event::payment("e1", "o1", 100, "eur"),
        Event::payment("e2", "o2", 7, "usd"),
        Event::payment("e3", "o1", 20, "eur"),
    );
    let mut other = Event::payment("e4", "o1", 1000, "eur");
    other.key = crate::event::key::EventKey::new("test", "refund".into(), "e4".into()).unwrap();
    let txn = db.begin().await.unwrap();
    let payments = Payments::new(crate::clock::Clock::system());
    payments
        .handle_batch(&[&a, &b, &c, &other], &txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let txn = db.begin().await.unwrap();
    payments
        .handle(&Event::payment("e5", "o2", 3, "usd"), &txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let orders = order::Entity::find().all(&db).await.unwrap();
    let got: Vec<_> = orders
        .iter()
        .map(|o| (o.order_id.as_str(), o.amount_paid, o.currency.as_str()))
        .collect();
    assert_eq!(got, [("o1", 120, "eur"), ("o2", 10, "usd")]);
    assert_eq!(payment::Entity::find().all(&db).await.unwrap().len(), 4);
    // Against the stored order: another currency, or a total past i64, is rejected.
    for bad in [
        Event::payment("e6", "o1", 5, "usd"),
        Event::payment("e7", "o1", i64::MAX, "eur"),
    ] {
        let txn = db.begin().await.unwrap();
        let result = payments.handle(&bad, &txn).await;
        assert!(matches!(result, Err(HandlerError::Reject(_))), "{result:?}");
        txn.rollback().await.unwrap();
    }
}

#[test]
fn a_payment_intent_without_an_order_is_not_for_this_handler() {
    let json =
        json!({"data": {"object": {"amount_received": 5, "currency": "usd", "metadata": {}}}});
    assert_eq!(
        parse("payment_intent.succeeded", Some(&json)).unwrap(),
        None
    );
    let generic = json!({"data": {"amount": 5, "currency": "usd"}});
    assert!(parse("payment_succeeded", Some(&generic)).is_err());
}
