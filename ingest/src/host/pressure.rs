//! Pressure stall information: `/proc/pressure/{cpu,memory,io}`.

use vigie_model::Labels;

use super::{Point, number};

/// One `/proc/pressure/<resource>` file. `some` → `waiting`, `full` →
/// `stalled`, in seconds; node_exporter 1.5 does not export `cpu` `full`.
pub(crate) fn parse_pressure(resource: &str, text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let total = fields
            .find_map(|f| f.strip_prefix("total="))
            .ok_or_else(|| format!("no total in `{line}`"))?;
        let seconds = number(total, kind)? / 1e6;
        let state = match kind {
            "some" => "waiting",
            "full" if resource != "cpu" => "stalled",
            "full" => continue,
            _ => return Err(format!("unexpected line `{line}`")),
        };
        out.push((
            format!("node_pressure_{resource}_{state}_seconds_total"),
            Labels::new(),
            seconds,
        ));
    }
    if out.is_empty() {
        return Err("no `some` line".to_string());
    }
    Ok(out)
}
