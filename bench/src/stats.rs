//! Statistics over repetitions: median, min–max, spread, and ratios to `direct` and to `nginx`
//! computed within one run, aggregated into one `Cell` per (variant, scenario, target).
//!
//! Owns: the arithmetic behind every number in the tables and charts.
//! Must not: do IO or formatting.

use serde::{Deserialize, Serialize};

use crate::plan::{Scenario, Variant};
use crate::rows::Row;

/// Median of the finite values; the mean of the middle two for an even count.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

pub fn min_max(xs: &[f64]) -> Option<(f64, f64)> {
    xs.iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(None, |acc, x| match acc {
            None => Some((x, x)),
            Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
        })
}

/// `value / base`, when the base is a positive number.
pub fn ratio(value: f64, base: Option<f64>) -> Option<f64> {
    match base {
        Some(b) if b > 0.0 && b.is_finite() && value.is_finite() => Some(value / b),
        _ => None,
    }
}

/// (max − min) / median in percent.
pub fn spread_pct(median: f64, min: f64, max: f64) -> Option<f64> {
    (median > 0.0).then(|| (max - min) / median * 100.0)
}

/// One table cell: a target's repetitions of one scenario in one variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub variant: Variant,
    pub scenario: Scenario,
    pub target: String,
    pub label: String,
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub spread_pct: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p75_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub errors: u64,
    pub noisy_reps: usize,
    pub max_bg_pct: f64,
    pub proxy_cpu_pct: Option<f64>,
    pub origin_cpu_pct: Option<f64>,
    pub load_cores_busy_pct: Option<f64>,
    /// Idle scenario: median proxy RSS before and with the idle connections, KiB.
    pub rss_before_kib: Option<f64>,
    pub rss_after_kib: Option<f64>,
    /// Median over median of `direct` (no proxy) in the same variant and scenario.
    pub ratio_direct: Option<f64>,
    /// Median over median of `nginx` in the same variant and scenario.
    pub ratio_nginx: Option<f64>,
}

fn med_of(rows: &[&Row], f: impl Fn(&Row) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
    median(&v)
}

/// Aggregates rows into cells: variants and scenarios in canonical order, targets in
/// `target_order` (then any others in order of appearance).
pub fn summarize(rows: &[Row], target_order: &[String]) -> Vec<Cell> {
    let mut targets: Vec<String> = target_order.to_vec();
    for r in rows {
        if !targets.contains(&r.target) {
            targets.push(r.target.clone());
        }
    }
    let mut cells = Vec::new();
    for variant in Variant::ALL {
        for scenario in Scenario::ALL {
            let mut group: Vec<Cell> = Vec::new();
            for t in &targets {
                let sel: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.variant == variant && r.scenario == scenario && &r.target == t)
                    .collect();
                let values: Vec<f64> = sel.iter().map(|r| r.value).collect();
                let (Some(med), Some((lo, hi))) = (median(&values), min_max(&values)) else {
                    continue;
                };
                group.push(Cell {
                    variant,
                    scenario,
                    target: t.clone(),
                    label: sel.first().map_or_else(|| t.clone(), |r| r.label.clone()),
                    n: values.len(),
                    median: med,
                    min: lo,
                    max: hi,
                    spread_pct: spread_pct(med, lo, hi),
                    p50_ms: med_of(&sel, |r| r.p50_ms),
                    p75_ms: med_of(&sel, |r| r.p75_ms),
                    p90_ms: med_of(&sel, |r| r.p90_ms),
                    p99_ms: med_of(&sel, |r| r.p99_ms),
                    mean_ms: med_of(&sel, |r| r.mean_ms),
                    errors: sel.iter().map(|r| r.errors).sum(),
                    noisy_reps: sel.iter().filter(|r| r.noisy).count(),
                    max_bg_pct: sel.iter().map(|r| r.bg_pct).fold(0.0, f64::max),
                    proxy_cpu_pct: med_of(&sel, |r| r.proxy_cpu_pct),
                    origin_cpu_pct: med_of(&sel, |r| r.origin_cpu_pct),
                    load_cores_busy_pct: med_of(&sel, |r| r.load_cores_busy_pct),
                    rss_before_kib: med_of(&sel, |r| r.rss_before_kib.map(|v| v as f64)),
                    rss_after_kib: med_of(&sel, |r| r.rss_after_kib.map(|v| v as f64)),
                    ratio_direct: None,
                    ratio_nginx: None,
                });
            }
            let base = |name: &str| group.iter().find(|c| c.target == name).map(|c| c.median);
            let (direct, nginx) = (base("direct"), base("nginx"));
            for c in &mut group {
                if c.target != "direct" {
                    c.ratio_direct = ratio(c.median, direct);
                }
                if c.target != "nginx" {
                    c.ratio_nginx = ratio(c.median, nginx);
                }
            }
            cells.extend(group);
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::sample_row;

    #[test]
    fn median_odd_even_and_non_finite() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn min_max_spread_and_ratio() {
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), Some((1.0, 3.0)));
        assert_eq!(min_max(&[]), None);
        assert_eq!(spread_pct(100.0, 90.0, 110.0), Some(20.0));
        assert_eq!(spread_pct(0.0, 0.0, 0.0), None);
        assert_eq!(ratio(50.0, Some(100.0)), Some(0.5));
        assert_eq!(ratio(50.0, Some(0.0)), None);
        assert_eq!(ratio(50.0, None), None);
    }

    #[test]
    fn cells_have_medians_and_ratios_within_the_run() {
        let mut rows = Vec::new();
        for (rep, (d, n, s)) in [(100.0, 60.0, 70.0), (110.0, 50.0, 80.0), (90.0, 55.0, 75.0)]
            .into_iter()
            .enumerate()
        {
            let rep = rep as u32 + 1;
            rows.push(sample_row("direct", Scenario::Small, rep, d));
            rows.push(sample_row("nginx", Scenario::Small, rep, n));
            rows.push(sample_row("strait", Scenario::Small, rep, s));
        }
        rows[2].noisy = true;
        rows[2].bg_pct = 12.0;
        rows.push(sample_row("strait", Scenario::Idle, 1, 4.0));
        rows.push(sample_row("nginx", Scenario::Idle, 1, 2.0));
        let order = vec!["direct".to_string(), "strait".into(), "nginx".into()];
        let cells = summarize(&rows, &order);
        let names: Vec<String> = cells
            .iter()
            .map(|c| format!("{}/{}", c.scenario, c.target))
            .collect();
        assert_eq!(
            names,
            [
                "small/direct",
                "small/strait",
                "small/nginx",
                "idle/strait",
                "idle/nginx"
            ]
        );
        let strait = &cells[1];
        assert_eq!(strait.median, 75.0);
        assert_eq!((strait.min, strait.max), (70.0, 80.0));
        assert_eq!(strait.ratio_direct, Some(0.75));
        assert_eq!(strait.ratio_nginx, Some(75.0 / 55.0));
        assert_eq!(strait.noisy_reps, 1);
        assert_eq!(strait.max_bg_pct, 12.0);
        assert_eq!(cells[0].ratio_direct, None);
        assert_eq!(cells[0].ratio_nginx, Some(100.0 / 55.0));
        assert_eq!(cells[2].ratio_nginx, None);
        // idle has no direct row: only the ratio to nginx.
        assert_eq!(cells[3].ratio_direct, None);
        assert_eq!(cells[3].ratio_nginx, Some(2.0));
    }
}
