//! `/signin`: with `ADMIN_TOKEN` set, the console's actions need it. Signing in keeps
//! it in an HttpOnly, SameSite=Strict cookie for this browser session.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use api::ErrorCode;
use base::Problem;
use serde::Deserialize;

use crate::{
    Console,
    guard::sign_in_cookie,
    html::{Nav, Page},
};

pub async fn form(console: web::Data<Console>, req: HttpRequest) -> HttpResponse {
    let main = if !console.guard.needs_sign_in() {
        "<h1>Sign in</h1><p>No admin token is set (<code>ADMIN_TOKEN</code>): every action is open.</p>".to_owned()
    } else if console.guard.signed_in(&req) {
        "<h1>Sign in</h1><p>Signed in.</p>".to_owned()
    } else {
        format!(
            "<h1>Sign in</h1><form class=\"filters\" method=\"post\" action=\"/signin\">{}\
             <label>admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
             <button>Sign in</button></form>",
            console.guard.field()
        )
    };
    Page {
        title: "Sign in",
        nav: Nav::SignIn,
        refresh: None,
        main,
    }
    .respond(StatusCode::OK)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    form_token: String,
    token: String,
}

pub async fn sign_in(
    console: web::Data<Console>,
    req: HttpRequest,
    form: web::Form<SignIn>,
) -> Result<HttpResponse, Problem> {
    console.guard.same_site(&req, &form.form_token)?;
    if !console.guard.is_admin_token(&form.token) {
        return Err(Problem::new(ErrorCode::Unauthorized, "that is not the admin token"));
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("Set-Cookie", sign_in_cookie(&form.token)))
        .insert_header(("Location", "/faults"))
        .finish())
}
