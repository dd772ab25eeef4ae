//! Checkout vocabulary validated once, shared by the services that take line items:
//! each newtype's `parse` is the only way in, and says what is wrong.

use std::collections::BTreeSet;

use api::{ChargeRequest, CheckoutRequest, CreateOrder, EnqueueEmail, LineItemRequest, PricedLine, ReserveStock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use base::Problem;

pub const MAX_QUANTITY: i64 = 1000;
pub const MAX_LINES: usize = 50;

/// A catalogue SKU: 1–32 characters of `A-Z`, `0-9`, `-` (e.g. `SKU-001`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Sku, String> {
        let ok = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Sku(raw.to_owned()))
        } else {
            Err(format!("{raw:?} is not a SKU (1-32 characters of A-Z, 0-9 and -)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many units of a SKU: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(i32);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Quantity, String> {
        if (1..=MAX_QUANTITY).contains(&raw) {
            Ok(Quantity(raw as i32))
        } else {
            Err(format!("quantity {raw} is out of range (1 to {MAX_QUANTITY})"))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineItem {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// 1 to [`MAX_LINES`] lines with distinct SKUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LineItems(Vec<LineItem>);

impl LineItems {
    pub fn parse(raw: &[LineItemRequest]) -> Result<LineItems, Problem> {
        let mut errors = Vec::new();
        if raw.is_empty() {
            errors.push("items must not be empty".to_owned());
        }
        if raw.len() > MAX_LINES {
            errors.push(format!("at most {MAX_LINES} lines are allowed, got {}", raw.len()));
        }
        let mut seen = BTreeSet::new();
        let mut items = Vec::with_capacity(raw.len());
        for (i, line) in raw.iter().enumerate() {
            match (Sku::parse(&line.sku), Quantity::parse(line.quantity)) {
                (Ok(sku), Ok(quantity)) => {
                    if !seen.insert(sku.clone()) {
                        errors.push(format!("items[{i}]: {} appears twice; merge the lines", sku.as_str()));
                    }
                    items.push(LineItem { sku, quantity });
                }
                (sku, quantity) => {
                    errors.extend(sku.err().map(|e| format!("items[{i}].sku: {e}")));
                    errors.extend(quantity.err().map(|e| format!("items[{i}].quantity: {e}")));
                }
            }
        }
        if errors.is_empty() {
            items.sort_by(|a, b| a.sku.cmp(&b.sku));
            Ok(LineItems(items))
        } else {
            Err(invalid(errors))
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &LineItem> {
        self.0.iter()
    }

    pub fn skus(&self) -> Vec<String> {
        self.0.iter().map(|l| l.sku.as_str().to_owned()).collect()
    }

    pub fn quantities(&self) -> Vec<i32> {
        self.0.iter().map(|l| l.quantity.get()).collect()
    }
}

/// An email address, checked the way a signup form would: one `@`, a dotted domain,
/// no spaces, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<EmailAddress, String> {
        let bad = || format!("{raw:?} is not an email address");
        if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(bad());
        }
        Ok(EmailAddress(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Stripe-style test token: `tok_` and 1–60 more characters of `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PaymentToken(String);

impl PaymentToken {
    pub fn parse(raw: &str) -> Result<PaymentToken, String> {
        let ok = raw.len() <= 64
            && raw
                .strip_prefix("tok_")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if ok {
            Ok(PaymentToken(raw.to_owned()))
        } else {
            Err(format!("{raw:?} is not a payment token (tok_...)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A 400 listing every problem found, in `errors`.
pub fn invalid(errors: Vec<String>) -> Problem {
    Problem::invalid(errors.join("; ")).with_extension("errors", errors)
}

/// A checkout validated and priced from the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PricedCheckout {
    pub customer_email: String,
    pub payment_token: String,
    pub items: Vec<PricedLine>,
    pub total_cents: i64,
}

/// What each participant is asked for this checkout's order: the same requests for a
/// saga's steps and a 2PC transaction's prepares.
impl PricedCheckout {
    pub fn create_order(&self, order_id: Uuid) -> CreateOrder {
        CreateOrder {
            order_id: Some(order_id),
            customer_email: self.customer_email.clone(),
            payment_token: self.payment_token.clone(),
            items: self.items.clone(),
        }
    }

    pub fn reserve_stock(&self, order_id: Uuid) -> ReserveStock {
        ReserveStock {
            order_id,
            items: self
                .items
                .iter()
                .map(|line| LineItemRequest {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
        }
    }

    pub fn charge(&self, order_id: Uuid) -> ChargeRequest {
        ChargeRequest {
            order_id,
            amount_cents: self.total_cents,
            payment_token: self.payment_token.clone(),
        }
    }

    pub fn confirmation_email(&self, order_id: Uuid) -> EnqueueEmail {
        EnqueueEmail {
            order_id,
            to: self.customer_email.clone(),
            total_cents: self.total_cents,
        }
    }
}

/// Validates a checkout (every problem listed, 400) and prices each line from the
/// inventory service (an unknown SKU is 422; an unreachable inventory 503).
pub async fn price_checkout(
    request: &CheckoutRequest,
    client: &client::http_client::HttpClient,
    inventory_url: &str,
) -> Result<PricedCheckout, Problem> {
    use base::ErrorCode;
    use client::http_client::CallOutcome;
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&request.customer_email).map_err(|e| errors.push(format!("customer_email: {e}")));
    let token = PaymentToken::parse(&request.payment_token).map_err(|e| errors.push(format!("payment_token: {e}")));
    let items = LineItems::parse(&request.items).map_err(|p| errors.push(p.detail));
    let (Ok(email), Ok(token), Ok(items)) = (email, token, items) else {
        return Err(invalid(errors));
    };
    let lookups = items.iter().map(|line| async move {
        let url = format!("{inventory_url}/inventory/{}", line.sku.as_str());
        let outcome: CallOutcome<api::Product> =
            CallOutcome::of(client.get(&url, std::time::Duration::from_secs(2)).send().await).await;
        (line, outcome)
    });
    let mut priced = Vec::new();
    for (line, outcome) in futures_util::future::join_all(lookups).await {
        let sku = line.sku.as_str();
        match outcome {
            CallOutcome::Succeeded(product) => priced.push(PricedLine {
                sku: sku.to_owned(),
                quantity: i64::from(line.quantity.get()),
                unit_price_cents: product.price_cents,
            }),
            CallOutcome::Refused { status: 422 | 404, .. } => {
                return Err(
                    Problem::new(ErrorCode::UnknownSku, format!("the catalogue has no {sku}"))
                        .with_extension("sku", sku),
                );
            }
            other => {
                return Err(Problem::new(
                    ErrorCode::ServiceUnavailable,
                    format!("pricing {sku} failed: {}", other.describe()),
                )
                .with_retry_after(1));
            }
        }
    }
    Ok(PricedCheckout {
        customer_email: email.as_str().to_owned(),
        payment_token: token.as_str().to_owned(),
        total_cents: priced.iter().map(|i| i.quantity * i.unit_price_cents).sum(),
        items: priced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> LineItemRequest {
        LineItemRequest {
            sku: sku.into(),
            quantity,
        }
    }

    #[test]
    fn quantities_must_be_sane() {
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(MAX_QUANTITY).is_ok());
        for bad in [0, -1, 1_000_000_000, i64::MAX] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn skus_are_upper_case_codes() {
        assert!(Sku::parse("SKU-001").is_ok());
        for bad in ["", "sku-001", "SKU 001", "SKU-'; DROP", &"X".repeat(33)] {
            assert!(Sku::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_items_report_every_error() {
        let err = LineItems::parse(&[line("SKU-001", 0), line("bad", 2), line("SKU-002", -1)]).unwrap_err();
        let errors = err.extensions["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(LineItems::parse(&[]).is_err());
        assert!(LineItems::parse(&[line("SKU-001", 1), line("SKU-001", 2)]).is_err());
    }

    #[test]
    fn line_items_are_sorted_by_sku() {
        let items = LineItems::parse(&[line("SKU-002", 1), line("SKU-001", 3)]).unwrap();
        assert_eq!(items.skus(), vec!["SKU-001", "SKU-002"]);
        assert_eq!(items.quantities(), vec![3, 1]);
    }

    #[test]
    fn email_addresses_are_checked() {
        assert!(EmailAddress::parse("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "ada@example..com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payment_tokens_look_like_stripes() {
        assert!(PaymentToken::parse("tok_visa").is_ok());
        assert!(PaymentToken::parse("tok_chargeDeclined").is_ok());
        for bad in ["", "tok_", "visa", "tok_vi sa", &format!("tok_{}", "x".repeat(61))] {
            assert!(PaymentToken::parse(bad).is_err(), "{bad}");
        }
    }
}
