use std::process::ExitCode;

use base::config::Service;

#[actix_web::main]
async fn main() -> ExitCode {
    shared::startup::run(Service::Console, console::startup::build).await
}
