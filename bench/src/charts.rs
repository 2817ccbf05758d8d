//! SVG charts drawn with plotters: per variant, throughput (one panel per scenario, a bar per
//! target with min–max whiskers), latency percentiles (p50/p75/p90/p99 per target for the wrk
//! scenarios) and proxy memory per idle connection.
//!
//! Owns: chart layout, colours (fixed per target) and file names.
//! Must not: compute statistics or decide what was measured (it draws the cells it is given).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plan::{Scenario, Variant};
use crate::stats::Cell;

/// A chart written to the results directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub variant: Variant,
    pub title: String,
    pub file: String,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(140, 140, 140), // direct
    RGBColor(230, 120, 20),  // strait
    RGBColor(0, 150, 70),    // nginx
    RGBColor(30, 100, 200),  // haproxy
    RGBColor(150, 60, 170),
    RGBColor(200, 40, 60),
    RGBColor(20, 160, 170),
    RGBColor(120, 90, 40),
];

fn colour(targets: &[String], t: &str) -> RGBColor {
    let i = targets.iter().position(|x| x == t).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// "strait (L4)" where Strait relays TCP instead of proxying HTTP (h2c, until its HTTP/2 lands;
/// every HTTP panel in results from before its HTTP/1.1 proxy); the target name elsewhere.
fn short_label(c: &Cell) -> String {
    if c.label != c.target && c.label.contains("L4 relay") {
        format!("{} (L4)", c.target)
    } else {
        c.target.clone()
    }
}

fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// One panel: a bar per target with min–max whiskers and the median printed above.
fn bar_panel(
    area: &Area,
    caption: &str,
    cells: &[&Cell],
    targets: &[String],
) -> Result<(), String> {
    let n = cells.len();
    let top = cells
        .iter()
        .map(|c| c.max.max(c.median))
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.18 } else { 1.0 };
    let labels: Vec<String> = cells.iter().map(|c| short_label(c)).collect();
    // A discrete range 0..k has k + 1 segments: one per target.
    let last = (n as i32 - 1).max(0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(58)
        .build_cartesian_2d((0..last).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| short(*y))
        .draw()
        .map_err(err)?;
    for (i, c) in cells.iter().enumerate() {
        let i = i as i32;
        let col = colour(targets, &c.target);
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), c.median),
            ],
            col.filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        let x = SegmentValue::CenterOf(i);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x.clone(), c.min), (x.clone(), c.max)],
                BLACK.stroke_width(2),
            )))
            .map_err(err)?;
        let style = TextStyle::from(("sans-serif", 12).into_font()).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ),
        );
        let mark = if c.noisy_reps > 0 { " †" } else { "" };
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{}{mark}", short(c.median)),
                (x, c.max.max(c.median) + top * 0.01),
                style,
            )))
            .map_err(err)?;
    }
    Ok(())
}

fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.div_ceil(cols).max(1), cols)
}

fn throughput(path: &Path, v: Variant, cells: &[Cell], targets: &[String]) -> Result<bool, String> {
    let scen: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| {
            *s != Scenario::Idle && cells.iter().any(|c| c.variant == v && c.scenario == *s)
        })
        .collect();
    if scen.is_empty() {
        return Ok(false);
    }
    let (rows, cols) = grid(scen.len());
    let size = (cols as u32 * 380, rows as u32 * 300 + 40);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let relayed = cells
        .iter()
        .any(|c| c.variant == v && scen.contains(&c.scenario) && short_label(c) != c.target);
    let note = if relayed {
        "; strait (L4) = Strait relaying TCP, not proxying HTTP"
    } else {
        ""
    };
    let root = root
        .titled(
            &format!("strait-bench throughput ({v}): median, whiskers min–max{note}"),
            ("sans-serif", 18),
        )
        .map_err(err)?;
    let panels = root.split_evenly((rows, cols));
    for (s, area) in scen.iter().zip(panels.iter()) {
        let sel: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.variant == v && c.scenario == *s)
            .collect();
        bar_panel(
            area,
            &format!("{}: {} ({})", s.name(), s.title(), s.unit()),
            &sel,
            targets,
        )?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

fn memory(path: &Path, v: Variant, cells: &[Cell], targets: &[String]) -> Result<bool, String> {
    let sel: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.variant == v && c.scenario == Scenario::Idle)
        .collect();
    if sel.is_empty() {
        return Ok(false);
    }
    let root = SVGBackend::new(path, (480, 340)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    bar_panel(
        &root,
        &format!("proxy RSS per idle keep-alive connection, KiB ({v}; lower is better)"),
        &sel,
        targets,
    )?;
    root.present().map_err(err)?;
    Ok(true)
}

fn latency(path: &Path, v: Variant, cells: &[Cell], targets: &[String]) -> Result<bool, String> {
    let scen: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| {
            s.is_wrk()
                && cells
                    .iter()
                    .any(|c| c.variant == v && c.scenario == *s && c.p50_ms.is_some())
        })
        .collect();
    if scen.is_empty() {
        return Ok(false);
    }
    let (rows, cols) = grid(scen.len());
    let size = (cols as u32 * 400, rows as u32 * 300 + 40);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!("strait-bench latency percentiles ({v}, wrk; medians over repetitions)"),
            ("sans-serif", 18),
        )
        .map_err(err)?;
    let panels = root.split_evenly((rows, cols));
    const PCT: [&str; 4] = ["p50", "p75", "p90", "p99"];
    for (s, area) in scen.iter().zip(panels.iter()) {
        let sel: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.variant == v && c.scenario == *s && c.p50_ms.is_some())
            .collect();
        let series: Vec<(&Cell, Vec<(i32, f64)>)> = sel
            .iter()
            .map(|c| {
                let pts = [c.p50_ms, c.p75_ms, c.p90_ms, c.p99_ms]
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.filter(|v| *v > 0.0).map(|v| (i as i32, v)))
                    .collect();
                (*c, pts)
            })
            .collect();
        let all: Vec<f64> = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|x| x.1))
            .collect();
        let hi = all.iter().copied().fold(0.0f64, f64::max);
        let hi = if hi > 0.0 { hi * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: {} (ms)", s.name(), s.title()),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.3f64..3.3f64, 0.0..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(4)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.05 && (0.0..4.0).contains(&i) {
                    PCT[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            })
            .draw()
            .map_err(err)?;
        for (c, pts) in &series {
            let col = colour(targets, &c.target);
            let pts: Vec<(f64, f64)> = pts.iter().map(|(i, v)| (f64::from(*i), *v)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                .map_err(err)?
                .label(c.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, col.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

/// Writes every chart for every variant into `dir`; returns what was written.
pub fn write_all(dir: &Path, cells: &[Cell], targets: &[String]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    for v in Variant::ALL {
        type Draw = fn(&Path, Variant, &[Cell], &[String]) -> Result<bool, String>;
        let kinds: [(&str, &str, Draw); 3] = [
            ("throughput", "throughput", throughput),
            ("latency", "latency percentiles", latency),
            ("memory", "memory per idle connection", memory),
        ];
        for (kind, title, draw) in kinds {
            let file = format!("{kind}-{v}.svg");
            if draw(&dir.join(&file), v, cells, targets)? {
                out.push(Chart {
                    variant: v,
                    title: title.to_string(),
                    file,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::sample_row;
    use crate::stats::summarize;

    #[test]
    fn draws_svg_files() {
        let dir = std::env::temp_dir().join(format!("strait-bench-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rows = Vec::new();
        for rep in 1..=3 {
            for (t, f) in [
                ("direct", 1.0),
                ("strait", 0.8),
                ("nginx", 0.6),
                ("haproxy", 0.5),
            ] {
                let x = f * (1.0 + rep as f64 / 100.0);
                rows.push(sample_row(t, Scenario::Small, rep, 100000.0 * x));
                rows.push(sample_row(t, Scenario::L4, rep, 20.0 * x));
                let mut h2c = sample_row(t, Scenario::H2c, rep, 150000.0 * x);
                h2c.mean_ms = Some(0.4);
                if t == "strait" {
                    h2c.label = "strait (L4 relay)".into();
                }
                rows.push(h2c);
                if t != "direct" {
                    rows.push(sample_row(t, Scenario::Idle, rep, 3.0 * x));
                }
            }
        }
        let targets: Vec<String> = ["direct", "strait", "nginx", "haproxy"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cells = summarize(&rows, &targets);
        let charts = write_all(&dir, &cells, &targets).unwrap();
        let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "throughput-pinned.svg",
                "latency-pinned.svg",
                "memory-pinned.svg"
            ]
        );
        for f in files {
            let svg = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(svg.starts_with("<svg"), "{f}");
            assert!(svg.contains("nginx"), "{f}");
        }
        // Strait is "strait (L4)" only in the h2c panel; the latency legend (wrk scenarios)
        // names it plainly.
        let svg = std::fs::read_to_string(dir.join("throughput-pinned.svg")).unwrap();
        assert_eq!(svg.matches("strait (L4)").count(), 2, "title + h2c bar");
        let svg = std::fs::read_to_string(dir.join("latency-pinned.svg")).unwrap();
        assert!(!svg.contains("L4"));
        assert!(svg.lines().any(|l| l.trim() == "strait"));
        // One target alone still draws.
        let one = summarize(&rows[..1], &targets);
        let charts = write_all(&dir, &one, &targets).unwrap();
        assert_eq!(charts.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
