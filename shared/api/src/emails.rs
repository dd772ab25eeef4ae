//! The outbox as the email service shows it (`POST /emails`, `GET /emails`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an email's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "email_state", rename_all = "snake_case")
)]
pub enum EmailState {
    /// Waiting for (another) delivery attempt.
    Pending,
    Delivered,
    /// Refused permanently by the SMTP server; not retried.
    Failed,
}

api_names!("an email state", EmailState { Pending => "pending", Delivered => "delivered", Failed => "failed" });

/// An email in the outbox, and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Email {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub state: EmailState,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// `GET /emails?order_id=`: an order's emails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Emails {
    pub order_id: Uuid,
    pub emails: Vec<Email>,
}
