//! A checkout's timeline as SVG: a row per step (or participant), each attempt a
//! bar on a shared time axis, with markers for the moments that matter (status
//! changes, the 2PC decision). Attributes only, no inline style: the page's
//! Content-Security-Policy allows none.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::html::{esc, millis};

const WIDTH: f64 = 1000.0;
const LABELS: f64 = 200.0;
const TRACK_END: f64 = 985.0;
const TOP: f64 = 30.0;
const ROW: f64 = 28.0;
const MIN_BAR: f64 = 3.0;

/// One call: an attempt of an action (upper half of its row) or of a compensation
/// (lower half).
pub struct Bar {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// CSS classes (its outcome).
    pub class: String,
    /// Shown on hover; plain text (escaped here).
    pub title: String,
    pub lower: bool,
}

/// A moment across every row.
pub struct Marker {
    pub at: DateTime<Utc>,
    pub label: String,
    pub class: String,
}

pub struct Timeline {
    start: DateTime<Utc>,
    span_ms: f64,
    rows: Vec<(String, bool, Vec<Bar>)>,
    markers: Vec<Marker>,
}

impl Timeline {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Timeline {
        let span_ms = ((end - start).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0).max(1.0);
        Timeline {
            start,
            span_ms,
            rows: Vec::new(),
            markers: Vec::new(),
        }
    }

    /// A row; `pivot` draws the line after it that separates what compensates from
    /// what only goes forward.
    pub fn row(&mut self, label: String, pivot: bool, bars: Vec<Bar>) {
        self.rows.push((label, pivot, bars));
    }

    pub fn marker(&mut self, marker: Marker) {
        self.markers.push(marker);
    }

    fn x(&self, at: DateTime<Utc>) -> f64 {
        let ms = (at - self.start).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        LABELS + (TRACK_END - LABELS) * (ms / self.span_ms).clamp(0.0, 1.0)
    }

    pub fn render(&self) -> String {
        let height = TOP + ROW * self.rows.len() as f64 + 24.0;
        let bottom = TOP + ROW * self.rows.len() as f64;
        let mut out = String::with_capacity(4096);
        let _ = write!(
            out,
            "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline of the calls\" \
             xmlns=\"http://www.w3.org/2000/svg\">"
        );
        for (i, (label, pivot, bars)) in self.rows.iter().enumerate() {
            let y = TOP + ROW * i as f64;
            let stripe = if i % 2 == 0 { "even" } else { "odd" };
            let _ = write!(
                out,
                "<rect class=\"lane {stripe}\" x=\"0\" y=\"{y}\" width=\"{WIDTH}\" height=\"{ROW}\"/>\
                 <text class=\"label\" x=\"8\" y=\"{:.1}\">{}</text>",
                y + ROW / 2.0 + 4.0,
                esc(label)
            );
            for bar in bars {
                let x = self.x(bar.start);
                let width = (self.x(bar.end) - x).max(MIN_BAR);
                let top = if bar.lower { y + 15.0 } else { y + 4.0 };
                let _ = write!(
                    out,
                    "<rect class=\"bar {}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"9\" rx=\"2\"><title>{}</title></rect>",
                    esc(&bar.class),
                    esc(&bar.title)
                );
            }
            if *pivot {
                let line = y + ROW;
                let _ = write!(
                    out,
                    "<line class=\"pivot-line\" x1=\"0\" y1=\"{line}\" x2=\"{WIDTH}\" y2=\"{line}\"><title>the pivot: \
                     above it a failure compensates; below it the saga only goes forward</title></line>"
                );
            }
        }
        for (i, marker) in self.markers.iter().enumerate() {
            let x = self.x(marker.at);
            let label_y = 10.0 + 10.0 * (i % 2) as f64;
            // Labels near an edge grow inwards, so they are never cut off.
            let anchor = if x > TRACK_END - 120.0 {
                "end"
            } else if x < LABELS + 120.0 {
                "start"
            } else {
                "middle"
            };
            let _ = write!(
                out,
                "<g class=\"marker {}\"><line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom}\"/>\
                 <text x=\"{x:.1}\" y=\"{label_y}\" text-anchor=\"{anchor}\">{}</text></g>",
                esc(&marker.class),
                TOP - 4.0,
                esc(&marker.label)
            );
        }
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{LABELS}\" y=\"{:.1}\">0</text>\
             <text class=\"axis\" x=\"{TRACK_END}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
            bottom + 16.0,
            bottom + 16.0,
            millis(self.span_ms)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_sit_on_one_axis_and_their_text_is_escaped() {
        let t0 = Utc::now();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let mut timeline = Timeline::new(t0, at(100));
        timeline.row(
            "<b>step</b>".into(),
            true,
            vec![Bar {
                start: at(0),
                end: at(50),
                class: "o-succeeded".into(),
                title: "<img src=x onerror=alert(1)>".into(),
                lower: false,
            }],
        );
        let svg = timeline.render();
        assert!(svg.contains("x=\"200.0\""), "{svg}");
        assert!(svg.contains("width=\"392.5\""), "{svg}");
        assert!(svg.contains("&lt;img src=x onerror=alert(1)&gt;"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("pivot-line"), "{svg}");
    }
}
