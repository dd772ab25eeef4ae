//! HTML, written by hand: every value that comes from a service (keys, emails,
//! reasons and errors come from users) goes through [`esc`]; pages carry a
//! Content-Security-Policy with no inline script or style, so markup that slipped
//! through unescaped still could not run.

use std::{fmt::Write as _, time::Duration};

use actix_web::{HttpResponse, http::StatusCode};
use chrono::{DateTime, Utc};

/// `raw` as HTML text or attribute value.
pub fn esc(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `raw` as one component of a URL's query or path.
pub fn url_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The pages of the console, for its navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Checkout,
    Scenarios,
    Blocking,
    Faults,
    SignIn,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/", "Overview"),
    (Nav::Scenarios, "/scenarios", "Scenarios"),
    (Nav::Blocking, "/blocking", "Blocking"),
    (Nav::Faults, "/faults", "Faults and resilience"),
];

/// A whole page. `refresh`: the page fetches itself again after that long and swaps
/// its `<main>` (until a refreshed page comes without it: a finished checkout).
pub struct Page<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub refresh: Option<Duration>,
    pub main: String,
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.main.len() + 1024);
        let refresh = self
            .refresh
            .map(|every| format!(" data-refresh-ms=\"{}\"", every.as_millis()))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · txlab console</title>\
             <link rel=\"stylesheet\" href=\"/assets/console.css\">\
             <script src=\"/assets/console.js\" defer></script></head>\
             <body{refresh}><header><a class=\"brand\" href=\"/\">txlab console</a><nav>",
            esc(self.title)
        );
        for (nav, href, label) in NAV {
            let current = if *nav == self.nav { " aria-current=\"page\"" } else { "" };
            let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
        }
        let live = if self.refresh.is_some() {
            "<span class=\"live\" title=\"this page updates itself\">live</span>"
        } else {
            ""
        };
        let _ = write!(out, "</nav>{live}</header><main>{}</main></body></html>", self.main);
        out
    }

    pub fn respond(&self, status: StatusCode) -> HttpResponse {
        html_response(status, self.render())
    }
}

/// An HTML answer with the console's security headers.
pub fn html_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// A status as a coloured label.
pub fn badge(status: &str) -> String {
    let status = esc(status);
    format!("<span class=\"badge s-{status}\">{status}</span>")
}

/// A note that a service could not be read, and why.
pub fn down(what: &str, why: &str) -> String {
    format!(
        "<p class=\"down\" role=\"status\"><b>{} is down</b> — {}</p>",
        esc(what),
        esc(why)
    )
}

/// How long ago, in a few characters.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A duration in milliseconds, in a few characters.
pub fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// The first eight characters of an id, with the whole id as its title.
pub fn short_id(id: &impl std::fmt::Display) -> String {
    let id = id.to_string();
    format!(
        "<code title=\"{}\">{}</code>",
        esc(&id),
        esc(&id.chars().take(8).collect::<String>())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_text() {
        assert_eq!(
            esc("<img src=x onerror=alert(1)> & \"q\" 'a'"),
            "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#39;a&#39;"
        );
        assert_eq!(url_component("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
    }

    #[test]
    fn a_page_escapes_its_title_and_says_when_it_is_live() {
        let page = Page {
            title: "<script>",
            nav: Nav::Overview,
            refresh: Some(Duration::from_millis(1500)),
            main: String::new(),
        }
        .render();
        assert!(page.contains("<title>&lt;script&gt; · txlab console</title>"), "{page}");
        assert!(page.contains("data-refresh-ms=\"1500\""), "{page}");
        assert!(page.contains("aria-current=\"page\""), "{page}");
    }
}
