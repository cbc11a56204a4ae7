//! Reading NAB's files: series CSVs, `combined_windows.json`,
//! `profiles.json`. Errors are `(what, message)` pairs.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDateTime;

use super::scorer::CostMatrix;

/// A read error: `(file, message)`.
pub type DataError = (String, String);

/// Parses NAB's timestamps (`2014-04-10 07:15:00` with optional fraction)
/// to milliseconds since the epoch (UTC).
pub fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| (path.display().to_string(), e.to_string()))
}

/// Rows `(ts_ms, value)` of a NAB series CSV (`timestamp,value` header).
pub fn read_series(path: &Path) -> Result<Vec<(i64, f64)>, DataError> {
    let text = read(path)?;
    let err = |line: usize, m: &str| (format!("{}:{}", path.display(), line + 1), m.to_string());
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (ts, value) = line
            .split_once(',')
            .ok_or_else(|| err(n, "expected `timestamp,value`"))?;
        let ts = parse_ts(ts).ok_or_else(|| err(n, "bad timestamp"))?;
        let value: f64 = value.trim().parse().map_err(|_| err(n, "bad value"))?;
        rows.push((ts, value));
    }
    Ok(rows)
}

/// `combined_windows.json`: file (`<category>/<file>.csv`) → windows as
/// `(start_ms, end_ms)`.
pub fn read_windows(path: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, DataError> {
    let text = read(path)?;
    let what = || path.display().to_string();
    let raw: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(&text).map_err(|e| (what(), e.to_string()))?;
    raw.into_iter()
        .map(|(file, windows)| {
            let windows = windows
                .iter()
                .map(|w| match w.as_slice() {
                    [a, b] => match (parse_ts(a), parse_ts(b)) {
                        (Some(a), Some(b)) => Ok((a, b)),
                        _ => Err((what(), format!("{file}: bad window timestamps {w:?}"))),
                    },
                    _ => Err((what(), format!("{file}: a window is [start, end]"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((file, windows))
        })
        .collect()
}

/// `profiles.json`: the three profiles' cost matrices, in the order
/// standard, reward_low_FP_rate, reward_low_FN_rate.
pub fn read_profiles(path: &Path) -> Result<[CostMatrix; 3], DataError> {
    let text = read(path)?;
    let what = || path.display().to_string();
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| (what(), e.to_string()))?;
    let get = |profile: &str| -> Result<CostMatrix, DataError> {
        let m = &json[profile]["CostMatrix"];
        let w = |k: &str| {
            m[k].as_f64()
                .ok_or_else(|| (what(), format!("{profile}.CostMatrix.{k} is missing")))
        };
        Ok(CostMatrix {
            tp: w("tpWeight")?,
            fp: w("fpWeight")?,
            fn_: w("fnWeight")?,
        })
    };
    Ok([
        get("standard")?,
        get("reward_low_FP_rate")?,
        get("reward_low_FN_rate")?,
    ])
}

/// Windows as inclusive row ranges: first row at or after the start, last
/// row at or before the end; windows with no row are dropped.
pub fn window_rows(ts: &[i64], windows: &[(i64, i64)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = windows
        .iter()
        .filter_map(|&(start, end)| {
            let left = ts.partition_point(|t| *t < start);
            let right = ts.partition_point(|t| *t <= end);
            (right > left).then(|| (left, right - 1))
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_fraction() {
        assert_eq!(parse_ts("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(parse_ts("1970-01-01 00:00:01.000000"), Some(1000));
        assert_eq!(parse_ts("nope"), None);
    }

    #[test]
    fn windows_to_rows() {
        let ts = [0, 10, 20, 30, 40];
        assert_eq!(window_rows(&ts, &[(10, 30)]), vec![(1, 3)]);
        assert_eq!(window_rows(&ts, &[(11, 29)]), vec![(2, 2)]);
        assert_eq!(window_rows(&ts, &[(41, 50)]), vec![]);
    }
}
