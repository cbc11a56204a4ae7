use super::*;

fn alert(status: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Value {
    let t: chrono::DateTime<chrono_tz::Tz> = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .expect("time")
        .with_timezone(&chrono_tz::Tz::UTC);
    Struct::value(
        "template.Alert",
        vec![
            ("Status", status.into()),
            ("Labels", Value::string_map(labels.iter().copied())),
            (
                "Annotations",
                Value::string_map(annotations.iter().copied()),
            ),
            ("StartsAt", Value::Time(t)),
            ("GeneratorURL", "http://gen/x".into()),
        ],
    )
}

fn data() -> Value {
    Struct::value(
        "template.Data",
        vec![
            ("Receiver", "ops team".into()),
            ("Status", "firing".into()),
            (
                "Alerts",
                Value::list(vec![
                    alert(
                        "firing",
                        &[
                            ("alertname", "Disk"),
                            ("instance", "a:9100"),
                            ("job", "node"),
                        ],
                        &[("summary", "disk a full")],
                    ),
                    alert(
                        "resolved",
                        &[
                            ("alertname", "Disk"),
                            ("instance", "b:9100"),
                            ("job", "node"),
                        ],
                        &[("summary", "disk b full")],
                    ),
                    alert(
                        "firing",
                        &[
                            ("alertname", "Disk"),
                            ("instance", "c:9100"),
                            ("job", "node"),
                        ],
                        &[],
                    ),
                ]),
            ),
            ("GroupLabels", Value::string_map([("alertname", "Disk")])),
            (
                "CommonLabels",
                Value::string_map([("alertname", "Disk"), ("job", "node")]),
            ),
            ("CommonAnnotations", Value::string_map([])),
            ("ExternalURL", "http://vigie:9464".into()),
        ],
    )
}

fn am(src: &str) -> String {
    let mut t = Templates::new(Dialect::Alertmanager);
    t.add(
        "lib.tmpl",
        r#"{{ define "list" }}{{ range . }}{{ .Labels.instance }};{{ end }}{{ end }}{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}"#,
    )
    .expect("library parses");
    t.render("field", src, &data(), &[], Escape::Text)
        .unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn range_with_index_else_and_variables() {
    assert_eq!(
        am("{{ range $i, $a := .Alerts }}{{ $i }}={{ $a.Labels.instance }} {{ end }}"),
        "0=a:9100 1=b:9100 2=c:9100 "
    );
    assert_eq!(
        am("{{ range .Alerts.Firing }}{{ .Annotations.summary }}|{{ end }}"),
        "disk a full||"
    );
    assert_eq!(
        am("{{ range .CommonAnnotations.SortedPairs }}x{{ else }}none{{ end }}"),
        "none"
    );
    assert_eq!(
        am("{{ range $k, $v := .CommonLabels }}{{ $k }}={{ $v }},{{ end }}"),
        "alertname=Disk,job=node,"
    );
    // A variable declared in a range body does not outlive it; `$` is the data.
    assert_eq!(
        am("{{ $n := 0 }}{{ range .Alerts }}{{ $n = 1 }}{{ $.Receiver }};{{ end }}{{ $n }}"),
        "ops team;ops team;ops team;1"
    );
    assert!(am("{{ range .Alerts }}{{ $x := 1 }}{{ end }}{{ $x }}").starts_with("ERR"));
}

#[test]
fn with_define_template_block() {
    assert_eq!(
        am("{{ with .Alerts.Resolved }}{{ len . }} resolved{{ end }}"),
        "1 resolved"
    );
    assert_eq!(
        am("{{ with .CommonAnnotations.summary }}{{ . }}{{ else }}no summary{{ end }}"),
        "no summary"
    );
    assert_eq!(
        am(r#"{{ template "list" .Alerts.Firing }}"#),
        "a:9100;c:9100;"
    );
    assert_eq!(
        am(r#"{{ define "own" }}<{{ . }}>{{ end }}{{ template "own" .Receiver }}"#),
        "<ops team>"
    );
    assert_eq!(
        am(r#"{{ block "blk" .Status }}b:{{ . }}{{ end }}"#),
        "b:firing"
    );
    assert_eq!(
        am(r#"{{ template "__subject" . }}"#),
        "[FIRING:2] Disk (node)"
    );
    assert!(am(r#"{{ template "nope" . }}"#).contains("template \"nope\" not defined"));
}

#[test]
fn kv_methods_and_functions() {
    assert_eq!(
        am("{{ .CommonLabels.SortedPairs }}"),
        "[{alertname Disk} {job node}]"
    );
    assert_eq!(am("{{ .CommonLabels.Names }}"), "[alertname job]");
    assert_eq!(
        am("{{ .CommonLabels.Remove (stringSlice \"job\") }}"),
        "map[alertname:Disk]"
    );
    assert_eq!(am("{{ (index .Alerts 1).Labels.instance }}"), "b:9100");
    assert_eq!(am("{{ index .CommonLabels \"job\" }}"), "node");
    assert_eq!(
        am(
            r#"{{ reReplaceAll ":(\\d+)" "/$1" "a:9100" }} {{ "  x " | trimSpace }} {{ title "ab cd" }} {{ toLower "AB" }}"#
        ),
        "a/9100 x Ab Cd ab"
    );
    assert_eq!(
        am(r#"{{ match "^a" "abc" }} {{ eq .Status "x" "firing" }} {{ ne 1 2 }}"#),
        "true true true"
    );
    assert_eq!(
        am(r#"{{ .Receiver | urlquery }} {{ html "<a&'>" }}"#),
        "ops+team &lt;a&amp;&#39;&gt;"
    );
    assert_eq!(
        am(
            r#"{{ (index .Alerts 0).StartsAt }}|{{ (index .Alerts 0).StartsAt.Format "2006-01-02T15:04:05Z07:00" }}|{{ (index .Alerts 0).StartsAt | tz "Europe/Paris" | date "Mon Jan _2 15:04 MST" }}"#
        ),
        "2023-11-14 22:13:20 +0000 UTC|2023-11-14T22:13:20Z|Tue Nov 14 23:13 CET"
    );
    assert_eq!(
        am(r#"{{ printf "%s-%05.1f-%T" "a" 3.14159 . }}"#),
        "a-003.1-template.Data"
    );
    assert_eq!(am("{{ toJson .GroupLabels }}"), r#"{"alertname":"Disk"}"#);
    assert_eq!(am("{{ .CommonLabels.missing }}|"), "|");
}

#[test]
fn trim_markers_comments_and_html_escaping() {
    assert_eq!(am("a  {{- .Status -}}  b{{/* note */}}"), "afiringb");
    assert_eq!(am("{{- /* c */ -}}  x"), "x");
    let t = Templates::new(Dialect::Alertmanager);
    let html = t
        .render(
            "h",
            r#"<a href="{{ .ExternalURL }}">{{ "<i>" }}{{ "<b>" | safeHtml }}</a>"#,
            &data(),
            &[],
            Escape::Html,
        )
        .expect("renders");
    assert_eq!(html, r#"<a href="http://vigie:9464">&lt;i&gt;<b></a>"#);
}

#[test]
fn errors_name_the_template_and_position() {
    let mut t = Templates::new(Dialect::Alertmanager);
    let e = t
        .add(
            "x.tmpl",
            "ok\n  {{ define \"a\" }}{{ if .X }}{{ end }}\n{{ nosuch . }}{{ end }}",
        )
        .expect_err("unknown function");
    assert_eq!(e.pos, Some(Pos { line: 3, col: 1 }));
    assert_eq!(
        e.to_string(),
        "template: x.tmpl:3:1: function \"nosuch\" not defined"
    );
    let e = t.add("y.tmpl", "{{ range .A }}").expect_err("unclosed");
    assert!(e.to_string().contains("y.tmpl:1:1"), "{e}");
    assert!(t.add("z.tmpl", "{{ .A ").is_err());
    // humanize is Prometheus', not Alertmanager's.
    assert!(t.check("f", "{{ humanize 1 }}").is_err());
    assert!(
        Templates::new(Dialect::Prometheus)
            .check("f", "{{ humanize 1 }}")
            .is_ok()
    );
    let e = t
        .render("field", "a\n {{ .Nope.X }}", &data(), &[], Escape::Text)
        .expect_err("no such field");
    assert_eq!(
        e.to_string(),
        "template: field:2:2: executing \"field\": can't evaluate field Nope in type template.Data"
    );
    // Recursion stops instead of overflowing the stack.
    let mut r = Templates::new(Dialect::Alertmanager);
    r.add(
        "r",
        r#"{{ define "loop" }}{{ template "loop" . }}{{ end }}"#,
    )
    .expect("parses");
    assert!(r.execute("loop", &Value::Nil, Escape::Text).is_err());
}
