//! Differential test: Vigie renders Alertmanager templates as Alertmanager
//! does. `amtool template render` (Debian's prometheus-alertmanager 0.25,
//! installed by `.ci/run`) renders on its own example data; Vigie renders
//! the same templates on the same data, built here (times left out: amtool
//! makes them from the clock).

use std::path::{Path, PathBuf};
use std::process::Command;

use vigie_alerting::templates::load;
use vigie_template::{Escape, Struct, Value};

/// amtool's example data (`amtool template render` without `--template.data`).
fn example_data() -> Value {
    let alert = |labels: &[(&str, &str)], annotations: &[(&str, &str)], fp: &str| {
        Struct::value(
            "template.Alert",
            vec![
                ("Status", "alertstatus".into()),
                ("Labels", Value::string_map(labels.iter().copied())),
                (
                    "Annotations",
                    Value::string_map(annotations.iter().copied()),
                ),
                ("GeneratorURL", "https://generatorurl.com".into()),
                ("Fingerprint", fp.into()),
            ],
        )
    };
    let common_labels = [
        ("commonlabelkey1", "commonlabelvalue1"),
        ("commonlabelkey2", "commonlabelvalue2"),
    ];
    let common_annotations = [
        ("commonannotationkey1", "commonannotationvalue1"),
        ("commonannotationkey2", "commonannotationvalue2"),
    ];
    let with = |a: &[(&'static str, &'static str)], b: &[(&'static str, &'static str)]| {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        v
    };
    Struct::value(
        "template.Data",
        vec![
            ("Receiver", "receiver".into()),
            ("Status", "alertstatus".into()),
            (
                "Alerts",
                Value::list(vec![
                    alert(
                        &with(
                            &common_labels,
                            &[
                                ("instance", "foo.bar:1234"),
                                ("label1", "value1"),
                                ("label2", "value2"),
                            ],
                        ),
                        &with(
                            &common_annotations,
                            &[("annotation1", "value1"), ("annotation2", "value2")],
                        ),
                        "fingerprint1",
                    ),
                    alert(
                        &with(&common_labels, &[("baz", "qux"), ("foo", "bar")]),
                        &with(&common_annotations, &[("aaa", "bbb"), ("ccc", "ddd")]),
                        "fingerprint2",
                    ),
                ]),
            ),
            (
                "GroupLabels",
                Value::string_map([
                    ("grouplabelkey1", "grouplabelvalue1"),
                    ("grouplabelkey2", "grouplabelvalue2"),
                ]),
            ),
            ("CommonLabels", Value::string_map(common_labels)),
            ("CommonAnnotations", Value::string_map(common_annotations)),
            ("ExternalURL", "https://example.com".into()),
        ],
    )
}

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

fn amtool(text: &str, html: bool) -> String {
    let glob = templates_dir().join("*.tmpl");
    let out = Command::new("amtool")
        .arg("template")
        .arg("render")
        .arg(format!("--template.glob={}", glob.display()))
        .arg(format!("--template.text={text}"))
        .arg(format!(
            "--template.type={}",
            if html { "html" } else { "text" }
        ))
        .output()
        .expect("amtool runs (Debian package prometheus-alertmanager; .ci/run installs it)");
    assert!(
        out.status.success(),
        "amtool failed on {text:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // amtool prints the rendering as it is.
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn vigie_renders_like_amtool_on_its_example_data() {
    let set = load(Path::new(""), &[]).expect("defaults");
    let data = example_data();
    let cases: &[(&str, bool)] = &[
        (r#"{{ template "__subject" . }}"#, false),
        (r#"{{ template "slack.default.fallback" . }}"#, false),
        (
            r#"{{ template "pagerduty.default.instances" .Alerts }}"#,
            false,
        ),
        (r#"{{ template "opsgenie.default.description" . }}"#, false),
        (r#"{{ template "wechat.default.message" . }}"#, false),
        (
            r#"{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Labels.SortedPairs }}|{{ $a.Fingerprint }};{{ end }}"#,
            false,
        ),
        (
            r#"{{ .CommonLabels.Remove .GroupLabels.Names }} {{ .GroupLabels.Names }} {{ .CommonAnnotations.Values }}"#,
            false,
        ),
        (
            r#"{{ with .Alerts.Firing }}f{{ else }}none{{ end }} {{ len .Alerts }} {{ index .CommonLabels "commonlabelkey1" | toUpper }} {{ .Receiver | urlquery }}"#,
            false,
        ),
        (
            r#"{{ printf "%q %v %s" .GroupLabels.grouplabelkey1 .GroupLabels .Alerts.Resolved }} {{ title "a b-c" }} {{ reReplaceAll "value(\\d)" "v$1" "value1 value2" }}"#,
            false,
        ),
        (
            r#"{{- define "own" }}[{{ . }}]{{ end -}} {{ template "own" .ExternalURL }} {{ stringSlice "x" "y" | join "," }} {{ match "^common" "commonlabelkey1" }}"#,
            false,
        ),
        (r#"{{ template "email.default.html" . }}"#, true),
        (
            r#"<b>{{ .Receiver }}</b>{{ "<i>&'" }}{{ "<u>" | safeHtml }}"#,
            true,
        ),
    ];
    for (text, html) in cases {
        let escape = if *html { Escape::Html } else { Escape::Text };
        let ours = set.render("amtool", "text", text, &data, escape, || {
            panic!("Vigie failed to render {text:?}")
        });
        assert_eq!(ours, amtool(text, *html), "template {text:?}");
    }
}
