//! CPU core lists: parsing `"0-3,6"`, formatting them back for `taskset -c`, and the set of CPUs
//! this process may run on.
//!
//! Owns: core-list syntax and the default split of the machine into proxy and load cores.
//! Must not: pin anything itself (procs.rs wraps commands in `taskset`).

use std::collections::BTreeSet;

/// Parses a core list such as `"1"`, `"0-3,6"`; order and duplicates do not matter.
pub fn parse(list: &str) -> Result<Vec<usize>, String> {
    let mut set = BTreeSet::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty entry in core list {list:?}"));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a, list)?, num(b, list)?),
            None => {
                let n = num(part, list)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!(
                "range {part:?} in core list {list:?} runs backwards"
            ));
        }
        if hi >= 4096 {
            return Err(format!("core {hi} in {list:?} is out of range"));
        }
        set.extend(lo..=hi);
    }
    Ok(set.into_iter().collect())
}

fn num(s: &str, list: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} in core list {list:?} is not a CPU number"))
}

/// Formats cores as a `taskset -c` list, compressing runs: `[0, 1, 2, 5]` → `"0-2,5"`.
pub fn format(cores: &[usize]) -> String {
    let set: BTreeSet<usize> = cores.iter().copied().collect();
    let mut out: Vec<String> = Vec::new();
    let mut iter = set.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The CPUs this process may run on (`Cpus_allowed_list` in /proc/self/status), or `0..n` from
/// `available_parallelism` when that cannot be read.
pub fn allowed() -> Vec<usize> {
    let from_status = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| parse(&v).ok())
        .filter(|v| !v.is_empty());
    from_status.unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    })
}

/// Default split: the proxy gets the last allowed CPU, load generator and origin the others. On a
/// single-CPU machine both get that CPU.
pub fn default_split(allowed: &[usize]) -> (Vec<usize>, Vec<usize>) {
    match allowed.split_last() {
        Some((last, rest)) if !rest.is_empty() => (vec![*last], rest.to_vec()),
        Some((last, _)) => (vec![*last], vec![*last]),
        None => (vec![0], vec![0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(parse("1").unwrap(), vec![1]);
        assert_eq!(parse("3,0-2,2").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse(" 4 - 5 , 7").unwrap(), vec![4, 5, 7]);
        assert!(parse("").is_err());
        assert!(parse("1,,2").is_err());
        assert!(parse("3-1").is_err());
        assert!(parse("x").is_err());
        assert!(parse("99999").is_err());
    }

    #[test]
    fn formats_runs() {
        assert_eq!(format(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(format(&[1]), "1");
        assert_eq!(format(&[3, 1, 2]), "1-3");
        assert_eq!(format(&[]), "");
    }

    #[test]
    fn default_split_keeps_last_core_for_the_proxy() {
        assert_eq!(default_split(&[0, 1]), (vec![1], vec![0]));
        assert_eq!(default_split(&[0, 1, 2, 3]), (vec![3], vec![0, 1, 2]));
        assert_eq!(default_split(&[5]), (vec![5], vec![5]));
        assert!(!allowed().is_empty());
    }
}
