//! The lab console: web pages over the other services' public HTTP APIs (it has no
//! database of its own), server-rendered, updating themselves, with their assets
//! embedded in the binary.
//!
//! - [`settings`]: where it listens, where the services and Jaeger's UI are.
//! - [`peers`]: reading the services; one that does not answer shows as down.
//! - [`pages`]: the overview and the checkout X-ray.
//! - [`timeline`]: a checkout's calls as SVG on one time axis.
//! - [`html`]: escaping, the page layout and its security headers.
//! - [`startup`]: builds the server.

/// What every handler of the console shares: its settings and its view of the services.
pub struct Console {
    pub settings: settings::ConsoleSettings,
    pub peers: peers::Peers,
}

pub mod html;
pub mod pages;
pub mod peers;
pub mod settings;
pub mod startup;
pub mod timeline;
