//! The OpenAPI 3.1 document each service serves at `GET /openapi.json`, and the
//! interactive docs at `GET /docs` (Swagger UI, compiled in: no internet needed).
//!
//! A service describes its own endpoints with `#[utoipa::path]` on its handlers and
//! hands the result to [`crate::startup::Routes`]. [`document`] adds what the platform
//! serves on every service (health, `/admin/faults`, `/admin/resilience`) and what
//! every endpoint shares, so that no handler has to repeat it: the trace and deadline
//! headers, `Idempotency-Key` on writes, `Authorization` on `/admin/*`, the
//! `traceresponse` header on every answer, and the problem+json answers the platform
//! itself may give on any route (a malformed body, shed load, a passed deadline, an
//! injected fault), each status described by the error codes it can carry.

use actix_web::{HttpResponse, http::header, web};
use utoipa::{
    OpenApi,
    openapi::{
        Components, ContentBuilder, Header, HeaderBuilder, Ref, RefOr, Required, Response, ResponseBuilder,
        path::{Operation, Parameter, ParameterBuilder, ParameterIn},
        schema::{ObjectBuilder, Schema, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

use api::ProblemBody;
use base::{ErrorCode, config::Service};

pub use utoipa::openapi::OpenApi as Document;

/// The media type of every error answer.
const PROBLEM_JSON: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    paths(
        crate::health::live,
        crate::health::ready,
        crate::fault::list_rules,
        crate::fault::put_rules,
        crate::fault::delete_rules,
        crate::shedding::show,
        crate::idempotency::admin::list,
    ),
    components(schemas(ProblemBody))
)]
struct Platform;

/// The whole document of `service`: its own endpoints (`own`), the platform's, and
/// what they all share.
pub fn document(service: Service, own: Document) -> Document {
    let mut doc = Platform::openapi();
    doc.merge(own);
    doc.info.title = format!("txlab {}", service.binary());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(format!(
        "The {} service of txlab. Every error is `application/problem+json`; every JSON body carries `trace_id`; \
         every answer has a `traceresponse` header naming its trace.",
        service.name()
    ));
    doc.info.license = Some(utoipa::openapi::LicenseBuilder::new().name("MIT OR Apache-2.0").build());
    let components = doc.components.get_or_insert_with(Components::new);
    components.security_schemes.insert(
        ADMIN_TOKEN.to_owned(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("`ADMIN_TOKEN`; without it set, `/admin/*` is open"))
                .build(),
        )),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (false, &mut item.get),
            (true, &mut item.post),
            (true, &mut item.put),
            (true, &mut item.delete),
        ];
        for (writes, operation) in operations {
            if let Some(operation) = operation {
                finish(path, writes, operation);
            }
        }
    }
    doc
}

const ADMIN_TOKEN: &str = "admin_token";

/// The writes that take no `Idempotency-Key`: the 2PC calls (the global transaction
/// id is their key) and the fault switch (replacing the rules twice is harmless).
const NOT_KEYED: [&str; 2] = ["/tpc/", "/admin/faults"];

/// Adds to one operation what every endpoint of its kind shares.
fn finish(path: &str, writes: bool, operation: &mut Operation) {
    let mut headers = vec![
        header_param(
            api::headers::TRACEPARENT,
            string(),
            "W3C trace context: the request joins this trace",
        ),
        header_param(api::headers::TRACESTATE, string(), "W3C trace context, vendor part"),
        header_param(
            api::headers::BAGGAGE,
            string(),
            "W3C baggage, passed on to every hop; `fault.<service>.<point>=<kind>` injects a fault (FAULT_INJECTION=on)",
        ),
        header_param(
            api::headers::REQUEST_TIMEOUT_MS,
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .build()
                .into(),
            "The caller's deadline, in milliseconds from now: work not done by then is given up (504)",
        ),
    ];
    let keyed = writes && !NOT_KEYED.iter().any(|prefix| path.starts_with(prefix));
    if keyed && !has_param(operation, api::headers::IDEMPOTENCY_KEY) {
        headers.push(header_param(
            api::headers::IDEMPOTENCY_KEY,
            idempotency_key(),
            "Makes the request safe to retry: the first answer is stored and replayed",
        ));
        headers.push(header_param(
            api::headers::FENCING_TOKEN,
            fencing_token(),
            "`<holder>:<epoch>`: the saga (2PC transaction) the call is made for and its driver's lease epoch. \
             The highest epoch seen per holder is kept with the work; a lower one is refused with 409 \
             `stale-fencing-token`, nothing done (a stored answer is still replayed)",
        ));
    }
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    parameters.extend(headers.into_iter().map(RefOr::T));

    // 400: a malformed `Request-Timeout-Ms` reaches every route.
    let mut statuses = vec![400, 500, 503, 504];
    if keyed {
        // A malformed key (or fencing token); the same key still in flight, or a stale
        // fencing token; the same key reused with another request.
        statuses.extend([400, 409, 422]);
    }
    if operation.request_body.is_some() {
        statuses.extend([413, 415]);
    }
    if path.contains('{') {
        statuses.push(404);
    }
    if path.starts_with("/admin/") {
        statuses.push(401);
        operation
            .security
            .get_or_insert_with(Vec::new)
            .push(SecurityRequirement::new::<_, [&str; 0], &str>(ADMIN_TOKEN, []));
    }
    for status in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem_response(status, None)));
    }
    // An error a handler names without a body is a problem+json: its description
    // says when, the error codes' table says which.
    for (status, response) in operation.responses.responses.iter_mut() {
        if let (Ok(status @ 400..=599), RefOr::T(given)) = (status.parse::<u16>(), &*response)
            && given.content.is_empty()
        {
            *response = RefOr::T(problem_response(status, Some(&given.description)));
        }
    }
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .entry(api::headers::TRACERESPONSE.to_owned())
                .or_insert_with(traceresponse);
        }
    }
}

fn string() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).build().into()
}

/// 1–255 printable ASCII characters.
fn idempotency_key() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[\\x20-\\x7E]+$"))
        .examples(["3f2c9a4e-checkout-1"])
        .build()
        .into()
}

/// `<holder>:<epoch>`: 1–100 printable characters, a colon, an epoch from 1.
fn fencing_token() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[!-~]{1,100}:[1-9][0-9]{0,17}$"))
        .examples(["0192f3a4-7c1e-7d2a-9b1e-3f4a5b6c7d8e:2"])
        .build()
        .into()
}

fn header_param(name: &str, schema: RefOr<Schema>, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

fn has_param(operation: &Operation, name: &str) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case(name)))
}

fn traceresponse() -> RefOr<Header> {
    RefOr::T(
        HeaderBuilder::new()
            .schema(Some(string()))
            .description(Some("W3C Trace Context Level 2: the trace this answer belongs to"))
            .build(),
    )
}

/// A problem+json answer with `status`, described by `when` (if given) and the error
/// codes that use the status.
fn problem_response(status: u16, when: Option<&str>) -> Response {
    let codes: Vec<String> = ErrorCode::ALL
        .into_iter()
        .filter(|code| code.status() == status)
        .map(|code| format!("`{}` ({})", code.slug(), code.title()))
        .collect();
    let codes = if codes.is_empty() {
        "an error".to_owned()
    } else {
        codes.join("; ")
    };
    let description = match when {
        Some(when) if !when.is_empty() => format!("{when}. Error codes with this status: {codes}"),
        _ => format!("Error codes with this status: {codes}"),
    };
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if matches!(status, 423 | 503) {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build(),
                ))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    response.build()
}

/// `GET /openapi.json` and `GET /docs` with its two assets.
pub fn routes(doc: web::Data<String>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(doc)
            .service(web::resource("/openapi.json").route(web::get().to(openapi_json)))
            .service(web::resource("/docs").route(web::get().to(docs_page)))
            .service(web::resource("/docs/swagger-ui-bundle.js").route(web::get().to(bundle_js)))
            .service(web::resource("/docs/swagger-ui.css").route(web::get().to(css)))
            .service(web::resource("/docs/init.js").route(web::get().to(init_js)));
    }
}

/// The document, rendered once at start-up.
pub fn render(doc: &Document) -> anyhow::Result<web::Data<String>> {
    Ok(web::Data::new(doc.to_json()?))
}

async fn openapi_json(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(doc.get_ref().clone())
}

/// Relative links, so the page also works behind a proxy that mounts the service
/// under a prefix.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>txlab API docs</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"#;

/// No validator badge: it would call out to validator.swagger.io.
const INIT_JS: &str = r##"window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: true,
  displayRequestDuration: true
});
"##;

const BUNDLE_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

/// The page sends no inline script, so a strict policy holds: only this origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'";

fn asset(content_type: &str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(DOCS_PAGE)
}

async fn bundle_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", BUNDLE_JS)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn init_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", INIT_JS.as_bytes())
}
