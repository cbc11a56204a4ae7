//! `/proc/net/{netstat,snmp,snmp6}` (node_exporter's `netstat` collector,
//! default field selection).

use std::sync::LazyLock;

use regex::Regex;
use vigie_model::Labels;

use super::{Point, number};

/// node_exporter 1.5's default `--collector.netstat.fields`.
static FIELDS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)",
        "|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)",
        "|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)",
        "|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
    ))
    .ok()
});

fn selected(key: &str) -> bool {
    FIELDS.as_ref().is_some_and(|re| re.is_match(key))
}

/// `/proc/net/netstat` or `/proc/net/snmp`: pairs of `Proto: names` and
/// `Proto: values` lines.
pub(crate) fn parse_netstat(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else {
            return Err("odd number of lines".to_string());
        };
        let (Some((proto, names)), Some((proto2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            return Err(format!("malformed line `{names}`"));
        };
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if proto != proto2 || names.len() != values.len() {
            return Err(format!("mismatched `{proto}` lines"));
        }
        for (name, value) in names.iter().zip(values) {
            let key = format!("{proto}_{name}");
            if selected(&key) {
                out.push((
                    format!("node_netstat_{key}"),
                    Labels::new(),
                    number(value, &key)?,
                ));
            }
        }
    }
    Ok(out)
}

/// `/proc/net/snmp6`: `Ip6InOctets  123` lines; the protocol ends at the `6`.
pub(crate) fn parse_snmp6(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let (Some(name), Some(value)) = (f.next(), f.next()) else {
            return Err(format!("malformed line `{line}`"));
        };
        let Some(six) = name.find('6') else { continue };
        let key = format!("{}_{}", &name[..=six], &name[six + 1..]);
        if selected(&key) {
            out.push((
                format!("node_netstat_{key}"),
                Labels::new(),
                number(value, &key)?,
            ));
        }
    }
    Ok(out)
}
