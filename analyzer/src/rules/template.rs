//! Alert templates: Prometheus rule labels and annotations, expanded with
//! Vigie's Go `text/template` engine ([`vigie_template`], dialect
//! Prometheus).
//!
//! The data is Prometheus': variables `$labels`, `$value`,
//! `$externalLabels`, `$externalURL` and the fields `.Labels`, `.Value`,
//! `.ExternalLabels`, `.ExternalURL`. Functions: Go's builtins and
//! Prometheus' (`humanize`, `humanize1024`, `humanizeDuration`,
//! `humanizePercentage`, `humanizeTimestamp`, `printf`, `toUpper`,
//! `toLower`, `title`, `reReplaceAll`, `match`, `stripPort`, `safeHtml`);
//! values print like Go (`1.234567e+06`, `+Inf`, `map[a:b]`). `query` is not
//! supported (an error).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

pub use vigie_template::go_float;
use vigie_template::{Dialect, Escape, Struct, Templates, Value};

/// What a template can read: the alert's series labels (with `__name__`
/// when the expression kept it), the value, and the external labels and URL.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    /// Labels of the series that produced the alert.
    pub labels: &'a BTreeMap<String, String>,
    /// `external_labels` of the configuration or unit test.
    pub external_labels: &'a BTreeMap<String, String>,
    /// The external URL.
    pub external_url: &'a str,
    /// The sample value.
    pub value: f64,
}

fn engine() -> &'static Templates {
    static ENGINE: OnceLock<Templates> = OnceLock::new();
    ENGINE.get_or_init(|| Templates::new(Dialect::Prometheus))
}

fn map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(Arc::new(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    ))
}

/// Expands `template` with `data`; an error says what is wrong.
pub fn expand(template: &str, data: &TemplateData<'_>) -> Result<String, String> {
    let labels = map(data.labels);
    let external = map(data.external_labels);
    let url = Value::Str(data.external_url.to_string());
    let value = Value::Float(data.value);
    let dot = Struct::value(
        "template.tmplData",
        vec![
            ("Labels", labels.clone()),
            ("ExternalLabels", external.clone()),
            ("ExternalURL", url.clone()),
            ("Value", value.clone()),
        ],
    );
    let vars = [
        ("$labels", labels),
        ("$externalLabels", external),
        ("$externalURL", url),
        ("$value", value),
    ];
    engine()
        .render("__alert", template, &dot, &vars, Escape::Text)
        .map_err(|e| e.message)
}

/// Checks that `template` parses (a rule file check).
pub fn check(template: &str) -> Result<(), String> {
    engine().check("__alert", template).map_err(|e| e.message)
}

/// Expands like Prometheus: an error becomes the text
/// `<error expanding template: …>`.
pub fn expand_or_error(template: &str, data: &TemplateData<'_>) -> String {
    if !template.contains("{{") {
        return template.to_string();
    }
    expand(template, data).unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str, labels: &[(&str, &str)], value: f64) -> String {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ext = BTreeMap::from([
            ("dc".to_string(), "par1".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        let data = TemplateData {
            labels: &labels,
            external_labels: &ext,
            external_url: "",
            value,
        };
        expand(t, &data).unwrap_or_else(|e| format!("ERR {e}"))
    }

    // Expected strings are promtool 2.42's output for the same templates.
    #[test]
    fn matches_prometheus_on_values() {
        let l = [("__name__", "x"), ("i", "1")];
        let d = "{{ humanize $value }}|{{ $value | humanize1024 }}|{{ humanizeDuration $value }}|{{ humanizePercentage $value }}";
        let e = r#"{{ printf "%d|%s|%.2f|%v|%5.1f|%-6s|%q" $value $value $value $value $value "ab" "q" }}"#;
        let g = r#"{{ printf "%d" 3 }} {{ printf "%e" $value }} {{ printf "%g" $value }} {{ printf "%x" 255 }} {{ printf "%.3g" $value }} {{ printf "%08.3f" $value}} {{ printf "%+d" 5 }} {{printf "%d"}} {{ printf "%d" 1 2 }}"#;
        let cases: &[(f64, &str, &str, &str, &str)] = &[
            (
                1234567.0,
                "1.234567e+06",
                "1.235M|1.177Mi|14d 6h 56m 7s|1.235e+08%",
                "%!d(float64=1.234567e+06)|%!s(float64=1.234567e+06)|1234567.00|1.234567e+06|1234567.0|ab    |\"q\"",
                "3 1.234567e+06 1.234567e+06 ff 1.23e+06 1234567.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                1023.99,
                "1023.99",
                "1.024k|1024|17m 3s|1.024e+05%",
                "%!d(float64=1023.99)|%!s(float64=1023.99)|1023.99|1023.99|1024.0|ab    |\"q\"",
                "3 1.023990e+03 1023.99 ff 1.02e+03 1023.990 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                0.000123,
                "0.000123",
                "123u|0.000123|123us|0.0123%",
                "%!d(float64=0.000123)|%!s(float64=0.000123)|0.00|0.000123|  0.0|ab    |\"q\"",
                "3 1.230000e-04 0.000123 ff 0.000123 0000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                -5.5,
                "-5.5",
                "-5.5|-5.5|-5.5s|-550%",
                "%!d(float64=-5.5)|%!s(float64=-5.5)|-5.50|-5.5| -5.5|ab    |\"q\"",
                "3 -5.500000e+00 -5.5 ff -5.5 -005.500 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                1e21,
                "1e+21",
                "1Z|867.4Ei|-106751991167300d -15h -30m -8s|1e+23%",
                "%!d(float64=1e+21)|%!s(float64=1e+21)|1000000000000000000000.00|1e+21|1000000000000000000000.0|ab    |\"q\"",
                "3 1.000000e+21 1e+21 ff 1e+21 1000000000000000000000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                90061.5,
                "90061.5",
                "90.06k|87.95ki|1d 1h 1m 1s|9.006e+06%",
                "%!d(float64=90061.5)|%!s(float64=90061.5)|90061.50|90061.5|90061.5|ab    |\"q\"",
                "3 9.006150e+04 90061.5 ff 9.01e+04 90061.500 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                f64::NAN,
                "NaN",
                "NaN|NaN|NaN|NaN%",
                "%!d(float64=NaN)|%!s(float64=NaN)|NaN|NaN|  NaN|ab    |\"q\"",
                "3 NaN NaN ff NaN      NaN +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                100000.0,
                "100000",
                "100k|97.66ki|1d 3h 46m 40s|1e+07%",
                "%!d(float64=100000)|%!s(float64=100000)|100000.00|100000|100000.0|ab    |\"q\"",
                "3 1.000000e+05 100000 ff 1e+05 100000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                0.0,
                "0",
                "0|0|0s|0%",
                "%!d(float64=0)|%!s(float64=0)|0.00|0|  0.0|ab    |\"q\"",
                "3 0.000000e+00 0 ff 0 0000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                f64::INFINITY,
                "+Inf",
                "+Inf|+Inf|+Inf|+Inf%",
                "%!d(float64=+Inf)|%!s(float64=+Inf)|+Inf|+Inf| +Inf|ab    |\"q\"",
                "3 +Inf +Inf ff +Inf     +Inf +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
        ];
        for (v, b, dd, ee, gg) in cases {
            assert_eq!(run("{{ $value }}", &l, *v), *b, "value {v}");
            assert_eq!(run(d, &l, *v), *dd, "humanize {v}");
            assert_eq!(run(e, &l, *v), *ee, "printf {v}");
            assert_eq!(run(g, &l, *v), *gg, "printf2 {v}");
        }
    }

    #[test]
    fn labels_maps_and_strings() {
        let l = [("__name__", "x"), ("i", "1")];
        assert_eq!(run("[{{ $labels.missing }}]", &l, 1.0), "[]");
        assert_eq!(run("{{ $labels }}", &l, 1.0), "map[__name__:x i:1]");
        assert_eq!(
            run(
                r#"{{ $externalLabels }} {{ $externalURL }} {{ .Value }} {{ title "hello wORLD-x_y" }} {{ toUpper "aB" }}"#,
                &l,
                1234567.0
            ),
            "map[dc:par1 env:prod]  1.234567e+06 Hello WORLD-X_y AB"
        );
        assert_eq!(run("{{ $externalLabels.dc | toUpper }}", &l, 0.0), "PAR1");
        assert_eq!(
            run("{{ .Labels.i }}/{{ toLower \"AbC\" }}", &l, 0.0),
            "1/abc"
        );
    }

    #[test]
    fn control_flow_and_trim() {
        let l = [("i", "1")];
        let t = "{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}";
        assert_eq!(run(t, &l, 90.0), "high");
        assert_eq!(run(t, &l, 60.0), "mid");
        assert_eq!(run(t, &l, 10.0), "low");
        assert_eq!(run("a  {{- $labels.i -}}  b", &l, 0.0), "a1b");
        assert_eq!(run("{{/* note */}}x", &l, 0.0), "x");
        assert_eq!(run("{{ $v := 3 }}{{ $v }}", &l, 0.0), "3");
        assert_eq!(
            run(
                "{{ printf \"%.1f\" ($value | humanize1024 | len) }}",
                &l,
                0.0
            ),
            "%!f(int=1)"
        );
        assert!(run("{{ nosuch 1 }}", &l, 0.0).starts_with("ERR"));
        assert!(run("{{ if 1 }}", &l, 0.0).starts_with("ERR"));
        assert_eq!(
            expand_or_error(
                "{{ oops",
                &TemplateData {
                    labels: &BTreeMap::new(),
                    external_labels: &BTreeMap::new(),
                    external_url: "",
                    value: 0.0
                }
            ),
            "<error expanding template: unclosed action>"
        );
    }

    #[test]
    fn go_float_formats() {
        assert_eq!(go_float(1e6, 'g', None), "1e+06");
        assert_eq!(go_float(123456.0, 'g', None), "123456");
        assert_eq!(go_float(0.5, 'g', None), "0.5");
        assert_eq!(go_float(1.5e-7, 'g', None), "1.5e-07");
        assert_eq!(go_float(1000.0, 'g', Some(4)), "1000");
        assert_eq!(go_float(12345.0, 'g', Some(4)), "1.234e+04");
        assert_eq!(go_float(2.0, 'f', Some(2)), "2.00");
        assert_eq!(go_float(-0.0, 'g', None), "-0");
        assert_eq!(go_float(2.0, 'E', None), "2E+00");
        assert_eq!(go_float(0.125, 'E', None), "1.25E-01");
    }
}
