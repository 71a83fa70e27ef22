// SPDX-License-Identifier: GPL-2.0

//! A client's trace (`--trace FILE`: one line per read, the monotonic clock in ns and the
//! bytes received so far) and `timeline`, which draws it as an SVG: the bytes received over
//! time, with the events of a fail-over marked (crash, verdict, takeover, first answer).

use std::fmt::Write as _;
use std::io::Write as _;

/// The monotonic clock, in ns: the same clock for every process of a machine.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where a client writes its reads, if it was asked to.
pub struct Trace(Option<std::io::BufWriter<std::fs::File>>);

impl Trace {
    /// The trace named by `--trace FILE` among `args`, or none.
    pub fn from_args(args: &[String]) -> Self {
        let path = args
            .iter()
            .position(|a| a == "--trace")
            .map(|i| args.get(i + 1).expect("--trace FILE"));
        Trace(path.map(|p| {
            let f = std::fs::File::create(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            std::io::BufWriter::new(f)
        }))
    }

    /// Records that `total` bytes have been received by now.
    pub fn read(&mut self, total: u64) {
        if let Some(w) = &mut self.0 {
            writeln!(w, "{} {total}", mono_ns()).expect("trace");
        }
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if let Some(w) = &mut self.0 {
            let _ = w.flush();
        }
    }
}

/// A marked event: label, time in seconds on the plot's axis.
struct Mark {
    label: String,
    at: f64,
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for an axis spanning `span`, about `n` ticks.
fn step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// `timeline TRACE OUT.svg [--zero NS] [--title TEXT] [--stall FROM@TO] [--window FROM@TO]
/// [--mark LABEL@SECONDS]...`: the trace's bytes over time, in seconds after `--zero` (a time
/// of the trace's clock, in ns; default: its first read), with the marks as vertical lines
/// and the stall (seconds) as a shaded band; `--window`: only that span of time (seconds).
pub fn timeline(args: &[String]) {
    let (trace, out) = (&args[0], &args[1]);
    let mut zero: Option<u64> = None;
    let mut title = String::from("bytes received by the client");
    let mut marks = Vec::new();
    let mut stall = None;
    let mut window: Option<(f64, f64)> = None;
    let mut i = 2;
    while i < args.len() {
        let v = args
            .get(i + 1)
            .unwrap_or_else(|| panic!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--zero" => zero = Some(v.parse().expect("--zero NS")),
            "--title" => title = v.clone(),
            "--window" => {
                let (a, b) = v.split_once('@').expect("--window FROM@TO");
                window = Some((
                    a.parse().expect("--window FROM@TO"),
                    b.parse().expect("--window FROM@TO"),
                ));
            }
            "--stall" => {
                let (a, b) = v.split_once('@').expect("--stall FROM@TO");
                stall = Some((
                    a.parse().expect("--stall FROM@TO"),
                    b.parse().expect("--stall FROM@TO"),
                ));
            }
            "--mark" => {
                let (label, at) = v.rsplit_once('@').expect("--mark LABEL@SECONDS");
                marks.push(Mark {
                    label: label.to_string(),
                    at: at.parse().expect("--mark LABEL@SECONDS"),
                });
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    let text = std::fs::read_to_string(trace).unwrap_or_else(|e| panic!("{trace}: {e}"));
    let points: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let (t, b) = l.split_once(' ')?;
            Some((t.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    assert!(!points.is_empty(), "{trace}: no reads");
    let zero = zero.unwrap_or(points[0].0);
    let secs = |t: u64| (t as f64 - zero as f64) / 1e9;
    let points: Vec<(u64, u64)> = match window {
        Some((a, b)) => points
            .into_iter()
            .filter(|&(t, _)| (a..=b).contains(&secs(t)))
            .collect(),
        None => points,
    };
    assert!(!points.is_empty(), "{trace}: no reads in the window");
    let svg = draw(&points, secs, &marks, stall, &title);
    std::fs::write(out, svg).unwrap_or_else(|e| panic!("{out}: {e}"));
}

fn draw(
    points: &[(u64, u64)],
    secs: impl Fn(u64) -> f64,
    marks: &[Mark],
    stall: Option<(f64, f64)>,
    title: &str,
) -> String {
    let (w, h) = (960.0, 540.0);
    let (left, right, top, bottom) = (90.0, 30.0, 60.0, 150.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let mut t0 = secs(points[0].0);
    let mut t1 = secs(points[points.len() - 1].0);
    for m in marks {
        t0 = t0.min(m.at);
        t1 = t1.max(m.at);
    }
    let pad = (t1 - t0).max(0.1) * 0.03;
    let (t0, t1) = (t0 - pad, t1 + pad);
    // The bytes axis spans what the plotted reads span (a window shows its part closely).
    let min_b = points.iter().map(|p| p.1).min().unwrap_or(0) as f64;
    let max_b = (points.iter().map(|p| p.1).max().unwrap_or(1) as f64).max(min_b + 1.0);
    // Bytes in kB or MB, whichever reads better.
    let (unit, div) = if max_b >= 4e6 {
        ("MB", 1e6)
    } else {
        ("kB", 1e3)
    };
    let x = |t: f64| left + (t - t0) / (t1 - t0) * pw;
    let y = |b: f64| top + ph - (b - min_b) / (max_b - min_b) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="30" font-size="17" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    // Axes, ticks and grid.
    let ts = step(t1 - t0, 8.0);
    let mut t = (t0 / ts).ceil() * ts;
    while t <= t1 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#e4e4e4"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(t),
            top,
            top + ph,
            top + ph + 18.0,
            format_secs(t, ts)
        );
        t += ts;
    }
    let bs = step((max_b - min_b) / div, 5.0);
    let mut b = (min_b / div / bs).ceil() * bs;
    while b <= max_b / div + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#e4e4e4"/><text x="{3}" y="{4:.1}" text-anchor="end">{5}</text>"##,
            left,
            y(b * div),
            left + pw,
            left - 8.0,
            y(b * div) + 4.0,
            format_secs(b, bs)
        );
        b += bs;
    }
    if let Some((a, b)) = stall {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{ph}" fill="#f5b7b1" fill-opacity="0.45"/><text x="{:.1}" y="{}" text-anchor="middle" fill="#922b21">client stall {:.0} ms</text>"##,
            x(a),
            x(b) - x(a),
            (x(a) + x(b)) / 2.0,
            top - 6.0,
            (b - a) * 1000.0
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">time (s)</text>"#,
        left + pw,
        top + ph + 40.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(24 {}) rotate(-90)" text-anchor="middle">received ({unit})</text>"#,
        top + ph / 2.0
    );
    // The reads, as a step line (bytes stay flat between two reads).
    let mut d = String::new();
    let mut last_b = 0.0;
    for (i, &(t, bytes)) in points.iter().enumerate() {
        let (px, pb) = (x(secs(t)), bytes as f64);
        if i == 0 {
            let _ = write!(d, "M{px:.1},{:.1}", y(pb));
        } else {
            let _ = write!(d, " L{px:.1},{:.1} L{px:.1},{:.1}", y(last_b), y(pb));
        }
        last_b = pb;
    }
    let _ = writeln!(
        s,
        r##"<path d="{d}" fill="none" stroke="#1f5fbf" stroke-width="2"/>"##
    );
    // The marks: vertical lines, labels staggered below the plot.
    let colors = [
        "#c0392b", "#d68910", "#7d3c98", "#1e8449", "#2e4053", "#b03a2e",
    ];
    let mut labels = String::new();
    for (i, m) in marks.iter().enumerate() {
        let c = colors[i % colors.len()];
        let mx = x(m.at);
        let ly = top + ph + 62.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{mx:.1}" y1="{top}" x2="{mx:.1}" y2="{}" stroke="{c}" stroke-width="1.5" stroke-dasharray="5,3"/>"#,
            top + ph
        );
        let _ = writeln!(
            s,
            r#"<line x1="{mx:.1}" y1="{}" x2="{mx:.1}" y2="{}" stroke="{c}" stroke-width="1"/>"#,
            top + ph,
            ly - 4.0
        );
        let anchor = if mx > left + pw * 0.6 { "end" } else { "start" };
        let tx = if anchor == "end" { mx - 4.0 } else { mx + 4.0 };
        let _ = writeln!(
            labels,
            r#"<text x="{tx:.1}" y="{ly:.1}" fill="{c}" text-anchor="{anchor}" stroke="white" stroke-width="4" paint-order="stroke">{} ({:+.3} s)</text>"#,
            esc(&m.label),
            m.at
        );
    }
    s.push_str(&labels);
    s.push_str("</svg>\n");
    s
}

fn format_secs(v: f64, step: f64) -> String {
    let digits = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(step(10.0, 8.0), 2.0);
        assert_eq!(step(1.0, 8.0), 0.2);
        assert_eq!(step(16.0, 5.0), 5.0);
        assert_eq!(format_secs(0.4, 0.2), "0.4");
        assert_eq!(format_secs(2.0, 1.0), "2");
    }

    #[test]
    fn draws_the_reads_and_the_marks() {
        let pts = [(0, 0), (1_000_000_000, 1000), (3_000_000_000, 5000)];
        let marks = [Mark {
            label: "crash <kill -9>".into(),
            at: 1.5,
        }];
        let svg = draw(&pts, |t| t as f64 / 1e9, &marks, Some((1.5, 2.0)), "t");
        assert!(svg.contains("client stall 500 ms"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("crash &lt;kill -9&gt; (+1.500 s)"));
        assert_eq!(svg.matches("<path").count(), 1);
    }
}
