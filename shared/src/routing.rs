//! How a service's routes are wired: what every app configures ([`common`]: body
//! limits, extractor errors, health, the 404) and the middleware stack of each
//! write ([`mutation`], [`checkout`]): load shedding, then the fault point, then
//! idempotency, then the handler.

use actix_web::web;

use crate::{
    fault, health, idempotency, shedding,
    web::{AdminToken, BODY_LIMIT, json_error, not_found, path_error, query_error},
};

/// Body limits, extractor errors as problem+json, health routes and a problem+json 404.
pub fn common(admin_token: Option<String>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.configure(limits_and_errors(admin_token)).configure(health::routes);
    }
}

/// Body limits, extractor errors as problem+json, the admin token and a problem+json
/// 404: [`common`] without the health routes, for a service without a database.
pub fn limits_and_errors(admin_token: Option<String>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(AdminToken(admin_token)))
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(|e, _| json_error(e).into()),
            )
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(web::PathConfig::default().error_handler(|e, _| path_error(e).into()))
            .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
            .default_service(web::to(not_found));
    }
}

/// A mutating endpoint: the fault point of `operation` around the idempotency
/// middleware around the handler. Every POST/PUT/DELETE that writes is declared so.
pub fn mutation(
    path: &str,
    route: actix_web::Route,
    operation: &'static str,
    key: idempotency::Idempotency,
) -> impl actix_web::dev::HttpServiceFactory {
    mutation_and_read(path, route, operation, key, None)
}

/// `POST /checkout`: a mutation whose key is required, behind the load shedder
/// (outermost, so a shed request claims no key and writes nothing).
pub fn checkout(
    path: &str,
    route: actix_web::Route,
    operation: &'static str,
) -> impl actix_web::dev::HttpServiceFactory {
    web::resource(path).route(
        route
            .wrap(idempotency::Idempotency::required())
            .wrap(fault::FaultPoint::new(operation))
            .wrap(actix_web::middleware::from_fn(shedding::shed_load)),
    )
}

/// A mutating endpoint that shares its path with a read (`POST` and `GET /emails`).
/// The middlewares wrap the mutating route only, so a method the resource does not
/// have is answered 405 with `Allow` before any of them runs.
pub fn mutation_and_read(
    path: &str,
    route: actix_web::Route,
    operation: &'static str,
    key: idempotency::Idempotency,
    read: Option<actix_web::Route>,
) -> impl actix_web::dev::HttpServiceFactory {
    let mut resource = web::resource(path).route(route.wrap(key).wrap(fault::FaultPoint::new(operation)));
    if let Some(read) = read {
        resource = resource.route(read);
    }
    resource
}
