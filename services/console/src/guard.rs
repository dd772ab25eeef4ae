//! What protects the console's actions (the forms that change something: fault rules,
//! scenarios). A cross-site request cannot make one: each form carries this process's
//! form token, which another site cannot read, and a request whose `Origin` (or
//! `Sec-Fetch-Site`) names another site is refused. With `ADMIN_TOKEN` set, an action
//! also needs the admin's sign-in (an HttpOnly, SameSite=Strict cookie).

use actix_web::HttpRequest;
use base::{ErrorCode, Problem};
use shared::web::constant_time_eq;

use crate::html::esc;

/// The sign-in cookie's name.
pub const ADMIN_COOKIE: &str = "txlab_console_admin";

pub struct Guard {
    form_token: String,
    admin_token: Option<String>,
}

impl Guard {
    pub fn new(admin_token: Option<String>) -> Guard {
        Guard {
            form_token: uuid::Uuid::new_v4().simple().to_string(),
            admin_token,
        }
    }

    /// The hidden field every action's form carries.
    pub fn field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"form_token\" value=\"{}\">",
            esc(&self.form_token)
        )
    }

    /// Whether actions need a sign-in (`ADMIN_TOKEN` is set).
    pub fn needs_sign_in(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Whether this request may act: no token needed, or the right one signed in.
    pub fn signed_in(&self, req: &HttpRequest) -> bool {
        match &self.admin_token {
            None => true,
            Some(expected) => cookie(req, ADMIN_COOKIE)
                .is_some_and(|value| constant_time_eq(value.as_bytes(), hex::encode(expected).as_bytes())),
        }
    }

    /// Whether `token` is the admin token.
    pub fn is_admin_token(&self, token: &str) -> bool {
        self.admin_token
            .as_deref()
            .is_some_and(|expected| constant_time_eq(token.as_bytes(), expected.as_bytes()))
    }

    /// Refuses a cross-site request; `form_token` is the one the form sent.
    pub fn same_site(&self, req: &HttpRequest, form_token: &str) -> Result<(), Problem> {
        let headers = req.headers();
        if let Some(site) = headers.get("Sec-Fetch-Site").and_then(|v| v.to_str().ok())
            && !matches!(site, "same-origin" | "none")
        {
            return Err(forbidden(format!("a {site} request cannot act here")));
        }
        if let Some(origin) = headers.get("Origin").and_then(|v| v.to_str().ok()) {
            let info = req.connection_info();
            let ours = format!("{}://{}", info.scheme(), info.host());
            if origin != ours {
                return Err(forbidden(format!("a request from {origin} cannot act on {ours}")));
            }
        }
        if !constant_time_eq(form_token.as_bytes(), self.form_token.as_bytes()) {
            return Err(forbidden(
                "the form's token is missing or stale: reload the page and try again".into(),
            ));
        }
        Ok(())
    }

    /// What an action checks first: same site, and signed in when that is needed.
    pub fn allow(&self, req: &HttpRequest, form_token: &str) -> Result<(), Problem> {
        self.same_site(req, form_token)?;
        if !self.signed_in(req) {
            return Err(Problem::new(
                ErrorCode::Unauthorized,
                "sign in with the admin token (/signin) to act",
            ));
        }
        Ok(())
    }
}

/// The `Set-Cookie` value that signs this browser in: the token hex-encoded (a cookie
/// value cannot hold every character a token may), HttpOnly, SameSite=Strict.
pub fn sign_in_cookie(token: &str) -> String {
    format!(
        "{ADMIN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        hex::encode(token)
    )
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

fn forbidden(detail: String) -> Problem {
    Problem::new(ErrorCode::Forbidden, detail)
}
