//! The headers of the contract, by name. Header names are case-insensitive on the
//! wire; these are the spellings the documents use.

/// The identity of a write: the same key and body are answered the same, once done.
/// 1–255 printable ASCII characters; required on `POST /checkout`.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What is left of the caller's deadline, in milliseconds: the callee never works
/// past it, and passes what is left on.
pub const REQUEST_TIMEOUT_MS: &str = "Request-Timeout-Ms";

/// W3C trace context: the caller's span.
pub const TRACEPARENT: &str = "traceparent";

/// W3C trace context, vendor part.
pub const TRACESTATE: &str = "tracestate";

/// W3C baggage; fault injection rides on it (`fault.<operation>=<kind>`).
pub const BAGGAGE: &str = "baggage";

/// On every answer: the trace the request was served in (W3C Trace Context level 2).
pub const TRACERESPONSE: &str = "traceresponse";

/// RFC 7240 preferences; `POST /checkout` honours `respond-async`: it answers 202
/// with `Location` as soon as the checkout is logged, without waiting for it.
pub const PREFER: &str = "Prefer";

/// On every participant call of a saga or a 2PC transaction: `<holder>:<epoch>`, the
/// saga's (transaction's) id and the epoch of its driver's lease. A participant keeps
/// the highest epoch seen per holder and refuses a lower one with `409`
/// `stale-fencing-token`, doing nothing.
pub const FENCING_TOKEN: &str = "Fencing-Token";

/// A `Fencing-Token` value: whose it is and its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencingToken {
    pub holder: String,
    pub epoch: i64,
}

impl FencingToken {
    /// At most this long, the holder part.
    pub const MAX_HOLDER: usize = 100;

    pub fn header_value(&self) -> String {
        format!("{}:{}", self.holder, self.epoch)
    }

    /// Parses `<holder>:<epoch>`: a holder of 1–100 printable ASCII characters, an
    /// epoch from 1.
    pub fn parse(raw: &str) -> Result<FencingToken, String> {
        let (holder, epoch) = raw
            .rsplit_once(':')
            .ok_or_else(|| format!("{FENCING_TOKEN} must be <holder>:<epoch>, got {raw:?}"))?;
        if holder.is_empty() || holder.len() > Self::MAX_HOLDER || !holder.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(format!(
                "the holder in {FENCING_TOKEN} must be 1-{} printable ASCII characters without spaces",
                Self::MAX_HOLDER
            ));
        }
        let epoch: i64 = epoch
            .parse()
            .ok()
            .filter(|e| *e >= 1)
            .ok_or_else(|| format!("the epoch in {FENCING_TOKEN} must be a whole number from 1, got {epoch:?}"))?;
        Ok(FencingToken {
            holder: holder.to_owned(),
            epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FencingToken;

    #[test]
    fn fencing_tokens_parse_and_print() {
        let token = FencingToken::parse("0190a1b2-0000-7000-8000-000000000001:7").unwrap();
        assert_eq!(token.epoch, 7);
        assert_eq!(token.header_value(), "0190a1b2-0000-7000-8000-000000000001:7");
        for bad in [
            "",
            "x",
            ":3",
            "x:0",
            "x:-1",
            "x:seven",
            "a b:2",
            &format!("{}:1", "h".repeat(101)),
        ] {
            assert!(FencingToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
