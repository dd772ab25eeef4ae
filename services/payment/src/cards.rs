//! Stripe-like test tokens.

/// What the card network answers for a token and amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    Approved,
    Declined(DeclineCode),
    /// A token this service does not know.
    UnknownToken,
}

pub use api::DeclineCode;

/// `tok_visa`, `tok_mastercard`, `tok_amex` approve; `tok_chargeDeclined` declines;
/// `tok_insufficientFunds` declines above `funds_limit_cents`.
pub fn authorize(token: &str, amount_cents: i64, funds_limit_cents: i64) -> Authorization {
    match token {
        "tok_visa" | "tok_mastercard" | "tok_amex" => Authorization::Approved,
        "tok_chargeDeclined" => Authorization::Declined(DeclineCode::CardDeclined),
        "tok_insufficientFunds" if amount_cents > funds_limit_cents => {
            Authorization::Declined(DeclineCode::InsufficientFunds)
        }
        "tok_insufficientFunds" => Authorization::Approved,
        _ => Authorization::UnknownToken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_behave_like_stripes_test_cards() {
        assert_eq!(authorize("tok_visa", 10_000_000, 100), Authorization::Approved);
        assert_eq!(
            authorize("tok_chargeDeclined", 1, 100),
            Authorization::Declined(DeclineCode::CardDeclined)
        );
        assert_eq!(authorize("tok_insufficientFunds", 100, 100), Authorization::Approved);
        assert_eq!(
            authorize("tok_insufficientFunds", 101, 100),
            Authorization::Declined(DeclineCode::InsufficientFunds)
        );
        assert_eq!(authorize("tok_bogus", 1, 100), Authorization::UnknownToken);
    }
}
