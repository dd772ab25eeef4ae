use std::process::ExitCode;

use shared::config::Service;

#[actix_web::main]
async fn main() -> ExitCode {
    shared::startup::run(Service::Order, |settings, _env| order_service::startup::build(settings)).await
}
