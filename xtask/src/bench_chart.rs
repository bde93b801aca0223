//! `cargo xtask bench`, the pictures: SVG 1.1 (W3C Recommendation, 16 August 2011) line charts
//! of the side-by-side figures, one series per server, written to `docs/bench/*.svg` and
//! embedded by docs/BENCHMARKS.md. A small hand-written writer: two chart shapes do not need a
//! plotting library's dependency tree on a 2-core build machine.
//!
//! - `cpu-per-stream.svg`: ingest CPU per stream-second against the number of real-time
//!   publishers N (log-scaled N axis).
//! - `listing-latency.svg`: the distribution of keyframe-arrival-to-segment-listed latency as a
//!   cumulative distribution (fraction of segments listed within x ms).
//!
//! `XTASK_BENCH_CHARTS_ONLY=1 cargo xtask bench` redraws both from the table and raw notes
//! already in docs/BENCHMARKS.md (the latency distribution then has only the min, p50, p99 and
//! max points the notes keep) without running anything.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// The figures a bench run collects for the charts, by server name.
#[derive(Default, Debug)]
pub(crate) struct Figures {
    /// Per server: (N publishers, CPU-ms per stream-second).
    pub cpu_per_stream: Vec<(String, Vec<(f64, f64)>)>,
    /// Per server: (latency ms, fraction of segments listed within it), ascending.
    pub listing_latency: Vec<(String, Vec<(f64, f64)>)>,
}

impl Figures {
    pub fn add_cpu(&mut self, server: &str, n: usize, cpu_ms: f64) {
        push_point(&mut self.cpu_per_stream, server, (n as f64, cpu_ms));
    }

    /// `sorted_ms`: every latency sample of one server, ascending.
    pub fn add_latency_samples(&mut self, server: &str, sorted_ms: &[f64]) {
        let n = sorted_ms.len() as f64;
        for (i, &ms) in sorted_ms.iter().enumerate() {
            push_point(&mut self.listing_latency, server, (ms, (i + 1) as f64 / n));
        }
    }

    /// Recovers the figures from a rendered docs/BENCHMARKS.md: the "Ingest CPU per
    /// stream-second, N = ..." rows and the "Listing latency, SERVER: ... min / p50 / p99 / max"
    /// raw notes.
    pub fn from_report(md: &str) -> Figures {
        let mut f = Figures::default();
        for line in md.lines() {
            if let Some(rest) = line.strip_prefix("| Ingest CPU per stream-second, N = ") {
                let n: Option<usize> = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse().ok());
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                // | metric | unit | Sluice | nginx-rtmp | ...
                if let (Some(n), Some(s), Some(x)) = (n, cells.get(3), cells.get(4)) {
                    for (server, v) in [("Sluice", s), ("nginx-rtmp", x)] {
                        if let Ok(v) = v.parse::<f64>() {
                            f.add_cpu(server, n, v);
                        }
                    }
                }
            } else if let Some(rest) = line.strip_prefix("- Listing latency, ") {
                let Some((server, tail)) = rest.split_once(':') else {
                    continue;
                };
                let q = |k: &str| -> Option<f64> {
                    let i = tail.find(k)? + k.len();
                    tail[i..].split_whitespace().next()?.parse().ok()
                };
                for (frac, key) in [(0.0, "min "), (0.5, "p50 "), (0.99, "p99 "), (1.0, "max ")] {
                    if let Some(ms) = q(key) {
                        push_point(&mut f.listing_latency, server, (ms, frac));
                    }
                }
            }
        }
        f
    }

    /// Writes `docs/bench/cpu-per-stream.svg` and `docs/bench/listing-latency.svg` under `root`.
    pub fn write_charts(&self, root: &Path) -> Result<Vec<String>> {
        let dir = root.join("docs/bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut written = Vec::new();
        for (file, chart) in self.charts() {
            if chart.series.is_empty() {
                continue;
            }
            let path = dir.join(file);
            std::fs::write(&path, chart.to_svg())
                .with_context(|| format!("writing {}", path.display()))?;
            written.push(format!("docs/bench/{file}"));
        }
        Ok(written)
    }

    fn charts(&self) -> Vec<(&'static str, Chart)> {
        vec![
            (
                "cpu-per-stream.svg",
                Chart {
                    title: "Ingest CPU per stream-second vs real-time publishers".into(),
                    x_label: "publishers per server (N, log scale)".into(),
                    y_label: "CPU-ms per stream-second".into(),
                    x_log: true,
                    series: to_series(&self.cpu_per_stream),
                },
            ),
            (
                "listing-latency.svg",
                Chart {
                    title: "Keyframe arrival -> segment listed (cumulative distribution)".into(),
                    x_label: "latency (ms)".into(),
                    y_label: "fraction of segments".into(),
                    x_log: false,
                    series: to_series(&self.listing_latency),
                },
            ),
        ]
    }
}

fn push_point(v: &mut Vec<(String, Vec<(f64, f64)>)>, server: &str, p: (f64, f64)) {
    if !p.0.is_finite() || !p.1.is_finite() {
        return;
    }
    match v.iter_mut().find(|(s, _)| s == server) {
        Some((_, pts)) => pts.push(p),
        None => v.push((server.to_string(), vec![p])),
    }
}

fn to_series(v: &[(String, Vec<(f64, f64)>)]) -> Vec<Series> {
    v.iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(name, pts)| {
            let mut points = pts.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            Series {
                name: name.clone(),
                points,
            }
        })
        .collect()
}

pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub(crate) struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Log-scaled x axis with ticks at the data's x values (stream counts).
    pub x_log: bool,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Sluice first, then the anchor; colour-blind-safe pair plus spares.
const COLOURS: &[&str] = &["#0072b2", "#d55e00", "#009e73", "#cc79a7"];

impl Chart {
    pub fn to_svg(&self) -> String {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        let fx = |v: f64| if self.x_log { v.max(1e-9).log10() } else { v };
        let x_ticks: Vec<f64> = if self.x_log {
            let mut t: Vec<f64> = self
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .collect();
            t.sort_by(f64::total_cmp);
            t.dedup();
            t
        } else {
            nice_ticks(x1)
        };
        let (lx0, lx1) = if self.x_log {
            // Some room on either side of a log axis, so the end points are not on the frame.
            let pad = ((fx(x1) - fx(x0)) * 0.08).max(0.1);
            (fx(x0) - pad, fx(x1) + pad)
        } else {
            (0.0, x1.max(x_ticks.last().copied().unwrap_or(1.0)))
        };
        self.render(lx0, lx1, &x_ticks, y1, &fx)
    }

    fn render(
        &self,
        lx0: f64,
        lx1: f64,
        x_ticks: &[f64],
        y_max: f64,
        fx: &dyn Fn(f64) -> f64,
    ) -> String {
        let y_ticks = nice_ticks(y_max);
        let ytop = y_ticks.last().copied().unwrap_or(1.0);
        let pw = WIDTH - LEFT - RIGHT;
        let ph = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (fx(x) - lx0) / (lx1 - lx0).max(1e-12) * pw;
        let sy = |y: f64| TOP + ph - y / ytop.max(1e-12) * ph;
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{}</text>
"##,
            esc(&self.title),
            WIDTH / 2.0,
            esc(&self.title)
        );
        // Grid and y ticks.
        s.push_str("<g class=\"axes\" stroke=\"#cccccc\" stroke-width=\"1\">\n");
        for &t in &y_ticks {
            let _ = writeln!(
                s,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
                LEFT + pw,
                y = sy(t)
            );
        }
        for &t in x_ticks {
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
                TOP + ph,
                x = sx(t)
            );
        }
        s.push_str("</g>\n<g class=\"labels\" fill=\"#333333\">\n");
        for &t in &y_ticks {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                sy(t) + 4.0,
                fmt_tick(t)
            );
        }
        for &t in x_ticks {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                sx(t),
                TOP + ph + 16.0,
                fmt_tick(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 12.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        s.push_str("</g>\n");
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#666666\"/>"
        );
        // One group per server: the line, its markers and its legend entry.
        for (i, ser) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut d = String::new();
            for (j, &(x, y)) in ser.points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if j == 0 { 'M' } else { 'L' },
                    sx(x),
                    sy(y)
                );
            }
            let _ = writeln!(
                s,
                r#"<g class="series" data-server="{name}"><title>{name}</title>
<path d="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                d.trim_end(),
                name = esc(&ser.name)
            );
            if ser.points.len() <= 12 {
                for &(x, y) in &ser.points {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                        sx(x),
                        sy(y)
                    );
                }
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = LEFT + pw + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{colour}" stroke-width="3"/>
<text x="{:.1}" y="{:.1}">{}</text>
</g>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0,
                esc(&ser.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// 0 and about five round steps covering `max` (1, 2 or 5 times a power of ten).
fn nice_ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

fn fmt_tick(v: f64) -> String {
    let near = |a: f64| (a - a.round()).abs() < 1e-6;
    if near(v) {
        format!("{v:.0}")
    } else if near(v * 10.0) {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
| Ingest CPU per stream-second, N = 8 real-time 3 Mbit/s publishers | CPU-ms | 1.312 | 3.094 | 0.42x | <= 0.4x: **not met** |  |
| Ingest CPU per stream-second, N = 32 real-time 3 Mbit/s publishers | CPU-ms | 0.969 | — | — | <= 0.4x: not measured |  |
| Ingest CPU per stream-second, N = 128 real-time 3 Mbit/s publishers | CPU-ms | 2.076 | 3.732 | 0.56x | <= 0.4x: **not met** |  |
- Listing latency, Sluice: 88 new segments observed, latencies (ms) min 0.04 / p50 0.77 / p99 1.61 / max 1.65
- Listing latency, nginx-rtmp: 88 new segments observed, latencies (ms) min 0.02 / p50 0.65 / p99 1.78 / max 1.88
";

    /// Parses the SVG as XML and returns, per `<g class="series">`, its server name and the
    /// number of points its path visits.
    fn series_of(svg: &str) -> Vec<(String, usize)> {
        let doc = roxmltree::Document::parse(svg).expect("chart is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.attribute("class") == Some("series"))
            .map(|g| {
                let path = g
                    .children()
                    .find(|c| c.has_tag_name("path"))
                    .expect("series has a path");
                let d = path.attribute("d").unwrap();
                (
                    g.attribute("data-server").unwrap().to_string(),
                    d.matches(['M', 'L']).count(),
                )
            })
            .collect()
    }

    #[test]
    fn charts_from_the_report_parse_as_xml_with_one_series_per_server() {
        let f = Figures::from_report(REPORT);
        let charts = f.charts();
        let cpu = series_of(&charts[0].1.to_svg());
        assert_eq!(
            cpu,
            vec![("Sluice".to_string(), 3), ("nginx-rtmp".to_string(), 2)],
            "one series per server; the unmeasured nginx N = 32 is left out"
        );
        let lat = series_of(&charts[1].1.to_svg());
        let names: Vec<&str> = lat.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Sluice", "nginx-rtmp"]);
        // min, p50, p99, max
        assert!(lat.iter().all(|(_, n)| *n == 4), "{lat:?}");
    }

    #[test]
    fn charts_from_samples_escape_names_and_stay_inside_the_plot() {
        let mut f = Figures::default();
        f.add_latency_samples("A & <B>", &[0.1, 0.2, 0.4, 3.0]);
        f.add_latency_samples("C", &[0.3]);
        f.add_cpu("A & <B>", 8, 1.0);
        let svg = f.charts()[1].1.to_svg();
        let s = series_of(&svg);
        assert_eq!(s[0].0, "A & <B>");
        assert_eq!(s.len(), 2);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        for c in doc.descendants().filter(|n| n.has_tag_name("circle")) {
            let cx: f64 = c.attribute("cx").unwrap().parse().unwrap();
            let cy: f64 = c.attribute("cy").unwrap().parse().unwrap();
            assert!((LEFT..=WIDTH - RIGHT).contains(&cx), "cx {cx}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&cy), "cy {cy}");
        }
        // The CPU chart of a single point still renders (a degenerate log axis).
        assert_eq!(series_of(&f.charts()[0].1.to_svg()).len(), 1);
    }

    #[test]
    fn nice_ticks_cover_the_maximum() {
        let t = nice_ticks(1.0);
        assert_eq!(t.len(), 6, "{t:?}");
        assert!((t[5] - 1.0).abs() < 1e-9, "{t:?}");
        let t = nice_ticks(3.732);
        assert!(*t.last().unwrap() >= 3.732 && t.len() <= 7, "{t:?}");
        assert_eq!(nice_ticks(0.0).last(), Some(&1.0));
    }
}
