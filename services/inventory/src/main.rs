use std::process::ExitCode;

use base::config::Service;

#[actix_web::main]
async fn main() -> ExitCode {
    shared::startup::run(Service::Inventory, |settings, _env| {
        inventory_service::startup::build(settings)
    })
    .await
}
