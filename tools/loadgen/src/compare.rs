//! Saga and 2PC back to back on the same machine: the same request mix, the same
//! fault schedule, interleaved A/B repetitions (ABBA…, so drift hits both alike),
//! reported as ratios, with an SVG chart.

use serde::Serialize;

use crate::load::{LoadSettings, Protocol, Report, run};

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub repetitions: Vec<Report>,
    pub saga: Summary,
    pub two_phase: Summary,
    /// 2PC ÷ saga.
    pub ratios: Ratios,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub throughput_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Cancelled (saga: compensated) or aborted (2PC), per checkout.
    pub abort_rate: f64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub throughput: f64,
    pub p50: f64,
    pub p99: f64,
    pub abort_rate: f64,
}

/// Runs `repetitions` of each protocol, alternating which goes first.
pub async fn compare(saga: &LoadSettings, two_phase: &LoadSettings, repetitions: usize) -> anyhow::Result<Comparison> {
    let mut reports = Vec::new();
    for r in 0..repetitions.max(1) {
        let order: [&LoadSettings; 2] = if r % 2 == 0 {
            [saga, two_phase]
        } else {
            [two_phase, saga]
        };
        for settings in order {
            reports.push(run(settings).await?);
        }
    }
    let summarise = |protocol: Protocol| {
        let runs: Vec<&Report> = reports.iter().filter(|r| r.protocol == protocol).collect();
        let n = runs.len().max(1) as f64;
        let checkouts: u64 = runs.iter().map(|r| r.requests as u64).sum();
        Summary {
            throughput_per_second: runs.iter().map(|r| r.throughput_per_second).sum::<f64>() / n,
            p50_ms: runs.iter().map(|r| r.latency_ms.p50).sum::<f64>() / n,
            p99_ms: runs.iter().map(|r| r.latency_ms.p99).sum::<f64>() / n,
            abort_rate: runs.iter().map(|r| r.outcomes.cancelled).sum::<u64>() as f64 / checkouts.max(1) as f64,
            failed: runs.iter().map(|r| r.outcomes.failed).sum(),
        }
    };
    let (saga_summary, tpc_summary) = (summarise(Protocol::Saga), summarise(Protocol::TwoPhase));
    let ratio = |a: f64, b: f64| if b == 0.0 { f64::NAN } else { a / b };
    Ok(Comparison {
        ratios: Ratios {
            throughput: ratio(tpc_summary.throughput_per_second, saga_summary.throughput_per_second),
            p50: ratio(tpc_summary.p50_ms, saga_summary.p50_ms),
            p99: ratio(tpc_summary.p99_ms, saga_summary.p99_ms),
            abort_rate: ratio(tpc_summary.abort_rate, saga_summary.abort_rate),
        },
        saga: saga_summary,
        two_phase: tpc_summary,
        repetitions: reports,
    })
}

impl Comparison {
    pub fn table(&self) -> String {
        let row = |name: &str, s: &Summary| {
            format!(
                "{name:<5} {:>9.1}/s  p50 {:>8.1} ms  p99 {:>8.1} ms  aborted {:>5.1} %  failed {}",
                s.throughput_per_second,
                s.p50_ms,
                s.p99_ms,
                s.abort_rate * 100.0,
                s.failed
            )
        };
        format!(
            "{}\n{}\n2pc/saga  throughput {:.2}  p50 {:.2}  p99 {:.2}  abort rate {:.2}",
            row("saga", &self.saga),
            row("2pc", &self.two_phase),
            self.ratios.throughput,
            self.ratios.p50,
            self.ratios.p99,
            self.ratios.abort_rate
        )
    }

    /// Two bar groups (throughput, p99), one bar per repetition and protocol.
    pub fn svg(&self, title: &str) -> String {
        let (width, height, margin) = (720.0, 360.0, 50.0);
        let panels = [("throughput (checkouts/s)", 0usize), ("p99 latency (ms)", 1usize)];
        let value = |r: &Report, metric: usize| {
            if metric == 0 {
                r.throughput_per_second
            } else {
                r.latency_ms.p99
            }
        };
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
             <text x=\"{margin}\" y=\"22\" font-size=\"15\">{}</text>",
            escape(title)
        );
        let panel_width = (width - 2.0 * margin) / 2.0;
        for (p, (label, metric)) in panels.iter().enumerate() {
            let x0 = margin + p as f64 * panel_width;
            let max = self
                .repetitions
                .iter()
                .map(|r| value(r, *metric))
                .fold(0.0_f64, f64::max)
                .max(1e-9);
            let bar = (panel_width - 30.0) / self.repetitions.len().max(1) as f64;
            let base = height - margin;
            out.push_str(&format!(
                "<text x=\"{x0}\" y=\"{}\">{label}</text><line x1=\"{x0}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"black\"/>",
                margin - 5.0,
                x0 + panel_width - 30.0
            ));
            for (i, report) in self.repetitions.iter().enumerate() {
                let v = value(report, *metric);
                let h = (height - 2.0 * margin - 10.0) * v / max;
                let (color, name) = match report.protocol {
                    Protocol::Saga => ("#4c78a8", "saga"),
                    Protocol::TwoPhase => ("#f58518", "2pc"),
                };
                let x = x0 + i as f64 * bar;
                out.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{name}: {v:.1}</title></rect>\
                     <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{v:.0}</text>",
                    base - h,
                    bar * 0.8,
                    x + bar * 0.4,
                    base - h - 3.0
                ));
            }
        }
        out.push_str(&format!(
            "<rect x=\"{margin}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#4c78a8\"/><text x=\"{}\" y=\"{}\">saga</text>\
             <rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#f58518\"/><text x=\"{}\" y=\"{}\">2pc</text></svg>",
            height - 25.0,
            margin + 14.0,
            height - 16.0,
            margin + 60.0,
            height - 25.0,
            margin + 74.0,
            height - 16.0
        ));
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
