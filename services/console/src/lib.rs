//! The lab console: web pages over the other services' public HTTP APIs (it has no
//! database of its own), server-rendered, updating themselves, with their assets
//! embedded in the binary.
//!
//! - [`settings`]: where it listens, where the services and Jaeger's UI are.
//! - [`peers`]: reading the services; one that does not answer shows as down.
//! - [`pages`]: the overview, the checkout X-ray, the scenarios, the fault rules.
//! - [`guard`]: what keeps another site (and, with `ADMIN_TOKEN`, anyone without
//!   it) from acting through the console.
//! - [`timeline`]: a checkout's calls as SVG on one time axis.
//! - [`traces`]: an OTLP/HTTP receiver keeping the latest traces, for a platform
//!   without Jaeger.
//! - [`html`]: escaping, the page layout and its security headers.
//! - [`startup`]: builds the server.

/// What every handler of the console shares: its settings, its view of the services,
/// and what guards its actions.
pub struct Console {
    pub settings: settings::ConsoleSettings,
    pub peers: peers::Peers,
    pub guard: guard::Guard,
    pub traces: traces::TraceBuffer,
}

pub mod guard;
pub mod html;
pub mod pages;
pub mod peers;
pub mod settings;
pub mod startup;
pub mod timeline;
pub mod traces;
