//! The services as the console reads them: through their public HTTP APIs only
//! (database-per-service stays true), each read bounded by a timeout, and a service
//! that does not answer shown as down rather than failing the page.

use std::{sync::Arc, time::Duration};

use base::{
    config::{PeerSettings, Service},
    problem::one_line,
};
use client::{http_client::HttpClient, resilience::Resilience};
use serde::de::DeserializeOwned;

/// What a read of a service found.
#[derive(Debug, Clone)]
pub enum Read<T> {
    Got(T),
    /// The service answered 404.
    Missing,
    /// No usable answer: unreachable, timed out, an error status, an unreadable body.
    Down(String),
}

impl<T> Read<T> {
    pub fn got(self) -> Option<T> {
        match self {
            Read::Got(value) => Some(value),
            Read::Missing | Read::Down(_) => None,
        }
    }

    pub fn as_ref(&self) -> Read<&T> {
        match self {
            Read::Got(value) => Read::Got(value),
            Read::Missing => Read::Missing,
            Read::Down(why) => Read::Down(why.clone()),
        }
    }
}

/// The console's view of the other services.
pub struct Peers {
    client: HttpClient,
    urls: PeerSettings,
    admin_token: Option<String>,
    timeout: Duration,
}

impl Peers {
    pub fn new(
        urls: PeerSettings,
        resilience: Arc<Resilience>,
        admin_token: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<Peers> {
        Ok(Peers {
            client: HttpClient::new(resilience)?,
            urls,
            admin_token,
            timeout,
        })
    }

    pub fn url(&self, service: Service) -> &str {
        self.urls.url(service)
    }

    /// `GET path` (with its query) on `service`, read as `T`. The `/admin` endpoints
    /// get the admin token when there is one.
    pub async fn get<T: DeserializeOwned>(&self, service: Service, path: &str) -> Read<T> {
        let url = format!("{}{path}", self.urls.url(service));
        let mut request = self.client.get(&url, self.timeout);
        if path.starts_with("/admin/")
            && let Some(token) = &self.admin_token
        {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Read::Down(format!("{service} does not answer: {}", one_line(&e))),
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Read::Missing;
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return Read::Down(format!("{service}: the answer was lost: {}", one_line(&e))),
        };
        if !status.is_success() {
            let detail = serde_json::from_slice::<api::ProblemBody>(&body)
                .map(|p| p.detail)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Read::Down(format!("{service} answered {status}: {detail}"));
        }
        match serde_json::from_slice(&body) {
            Ok(value) => Read::Got(value),
            Err(e) => Read::Down(format!("{service}: unreadable answer to GET {path}: {e}")),
        }
    }

    /// A state-changing call on `service` (an action of the console): the answer's
    /// status and body, or why there was none. `/admin` paths get the admin token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        service: Service,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, String)],
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.urls.url(service));
        let mut request = self.client.inner().request(method, &url).timeout(self.timeout);
        if path.starts_with("/admin/")
            && let Some(token) = &self.admin_token
        {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{service} does not answer: {}", one_line(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{service}: the answer was lost: {}", one_line(&e)))?;
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }
}

/// A service's answer to an action.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("unreadable answer: {e}"))
    }

    /// A problem's detail, or the body itself.
    pub fn detail(&self) -> String {
        serde_json::from_slice::<api::ProblemBody>(&self.body)
            .map(|p| p.detail)
            .unwrap_or_else(|_| String::from_utf8_lossy(&self.body).chars().take(200).collect())
    }
}
