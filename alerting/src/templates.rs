//! Alertmanager notification templates: Go templates in receiver fields
//! (`subject: '{{ template "email.default.subject" . }}'`, Slack `title`,
//! PagerDuty `description`, ...), rendered at notification time with
//! Alertmanager's data (`template.Data`) by [`vigie_template`].
//!
//! The set holds Alertmanager's own `default.tmpl` and `email.tmpl`
//! (v0.25.0, see `alerting/templates/README.md`), then the files of the
//! `templates` globs in order, which may redefine any name. A file that
//! does not parse is a start-up error with its file, line and column
//! ([`load`]). A field that fails at render time is logged, counted in
//! `vigie_notification_template_errors_total{integration, field}`, and
//! replaced by Vigie's plain default so the page still goes out
//! ([`NotifyTemplates::render`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use vigie_template::{Dialect, Escape, Struct, Templates, Value};

use crate::notify::{GroupStatus, Notification, NotifiedAlert};

/// Alertmanager v0.25.0's `template/default.tmpl`.
const DEFAULT_TMPL: &str = include_str!("../templates/default.tmpl");
/// Alertmanager v0.25.0's `template/email.tmpl`.
const EMAIL_TMPL: &str = include_str!("../templates/email.tmpl");

/// A template file that could not be used: file, position and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct TemplateFileError {
    /// The file (or glob, when the glob itself is wrong).
    pub file: String,
    /// 1-based line (0 when not about a position).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl From<TemplateFileError> for crate::alertmanager::AlertmanagerError {
    fn from(e: TemplateFileError) -> Self {
        crate::alertmanager::AlertmanagerError::Syntax {
            file: e.file,
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}

/// The template set notifiers render their fields with. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NotifyTemplates {
    set: Templates,
}

impl NotifyTemplates {
    /// Alertmanager's default templates only.
    pub fn defaults() -> Arc<NotifyTemplates> {
        static DEFAULTS: OnceLock<Arc<NotifyTemplates>> = OnceLock::new();
        Arc::clone(DEFAULTS.get_or_init(|| {
            let mut set = Templates::new(Dialect::Alertmanager);
            for (name, text) in [("default.tmpl", DEFAULT_TMPL), ("email.tmpl", EMAIL_TMPL)] {
                if let Err(e) = set.add(name, text) {
                    // Covered by the tests: the shipped files parse.
                    tracing::error!(error = %e, "Alertmanager's default templates do not parse");
                }
            }
            Arc::new(NotifyTemplates { set })
        }))
    }

    /// Renders field `field` of an `integration` from `template`; on error,
    /// logs, counts and returns `fallback()`.
    pub fn render(
        &self,
        integration: &'static str,
        field: &str,
        template: &str,
        data: &Value,
        escape: Escape,
        fallback: impl FnOnce() -> String,
    ) -> String {
        match self.set.render(field, template, data, &[], escape) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, integration, field, "notification template failed; Vigie's default text is sent instead");
                crate::metrics::TEMPLATE_ERRORS
                    .with_label_values(&[integration, field])
                    .inc();
                fallback()
            }
        }
    }

    /// Renders `template` for `n`, falling back to `fallback()` on error.
    pub fn text(
        &self,
        integration: &'static str,
        field: &str,
        template: &str,
        n: &Notification,
        fallback: impl FnOnce() -> String,
    ) -> String {
        self.render(
            integration,
            field,
            template,
            &data(n),
            Escape::Text,
            fallback,
        )
    }

    /// Whether a template `name` is defined.
    pub fn has(&self, name: &str) -> bool {
        self.set.has(name)
    }
}

/// Alertmanager's defaults, then the files the `globs` match (each glob's
/// matches in name order; relative globs are relative to `base`). A glob
/// that matches nothing adds nothing, as in Alertmanager.
pub fn load(base: &Path, globs: &[String]) -> Result<Arc<NotifyTemplates>, TemplateFileError> {
    if globs.is_empty() {
        return Ok(NotifyTemplates::defaults());
    }
    let mut set = NotifyTemplates::defaults().set.clone();
    for glob in globs {
        for file in expand_glob(base, glob)? {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| TemplateFileError {
                file: name.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            })?;
            set.add(&name, &text).map_err(|e| {
                let pos = e.pos.unwrap_or_default();
                TemplateFileError {
                    file: name.clone(),
                    line: pos.line,
                    column: pos.col,
                    message: e.message,
                }
            })?;
        }
    }
    Ok(Arc::new(NotifyTemplates { set }))
}

/// The files `glob` names: wildcards (`*`, `?`, `[...]`) in the file name
/// only, as `templates: ['/etc/alertmanager/templates/*.tmpl']` uses them.
pub fn expand_glob(base: &Path, glob: &str) -> Result<Vec<PathBuf>, TemplateFileError> {
    let path = base.join(glob);
    let bad = |message: String| TemplateFileError {
        file: glob.to_string(),
        line: 0,
        column: 0,
        message,
    };
    let wild = |s: &str| s.contains(['*', '?', '[']);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let Some(pattern) = path.file_name().and_then(|f| f.to_str()) else {
        return Err(bad("names no file".into()));
    };
    if wild(&dir.display().to_string()) {
        return Err(bad(
            "wildcards are supported in the file name only (e.g. templates/*.tmpl)".into(),
        ));
    }
    if !wild(pattern) {
        return Ok(if path.exists() {
            vec![path]
        } else {
            Vec::new()
        });
    }
    let mut re = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                for c in chars.by_ref() {
                    match c {
                        ']' => break,
                        '^' | '!' if re.ends_with('[') => re.push('^'),
                        '\\' | '[' => re.push_str(&regex::escape(&c.to_string())),
                        c => re.push(c),
                    }
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    let re = regex::Regex::new(&re).map_err(|e| bad(format!("bad pattern: {e}")))?;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| re.is_match(n)))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to `.Receiver`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn time(ms: Option<i64>) -> Value {
    let t = ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .or_else(|| chrono::DateTime::from_timestamp(vigie_template::ZERO_TIME_UNIX, 0))
        .unwrap_or_default();
    Value::Time(t.with_timezone(&chrono_tz::Tz::UTC))
}

fn labels(l: &vigie_model::Labels) -> Value {
    Value::string_map(l.iter())
}

fn alert(a: &NotifiedAlert) -> Value {
    Struct::value(
        "template.Alert",
        vec![
            ("Status", a.status.as_str().into()),
            ("Labels", labels(&a.labels)),
            ("Annotations", labels(&a.annotations)),
            ("StartsAt", time(Some(a.starts_at_ms))),
            ("EndsAt", time(a.ends_at_ms)),
            ("GeneratorURL", a.generator_url.as_str().into()),
            ("Fingerprint", a.fingerprint.as_str().into()),
        ],
    )
}

/// Alertmanager's `template.Data` for a notification.
pub fn data(n: &Notification) -> Value {
    Struct::value(
        "template.Data",
        vec![
            ("Receiver", quote_meta(&n.receiver).into()),
            (
                "Status",
                match n.status {
                    GroupStatus::Firing => "firing",
                    GroupStatus::Resolved => "resolved",
                }
                .into(),
            ),
            ("Alerts", Value::list(n.alerts.iter().map(alert).collect())),
            ("GroupLabels", labels(&n.group_labels)),
            ("CommonLabels", labels(&n.common_labels())),
            ("CommonAnnotations", labels(&n.common_annotations())),
            ("ExternalURL", n.external_url.as_str().into()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::Labels;

    fn notification() -> Notification {
        let alert = |i: &str, status| NotifiedAlert {
            status,
            labels: Labels::new()
                .with("alertname", "DiskFull")
                .with("instance", i)
                .with("severity", "page"),
            annotations: Labels::new().with("summary", format!("disk full on {i}")),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: None,
            generator_url: "http://vigie/graph".into(),
            fingerprint: "0000000000000001".into(),
        };
        Notification {
            receiver: "ops.team".into(),
            group_key: "{}:{alertname=\"DiskFull\"}".into(),
            status: GroupStatus::Firing,
            group_labels: Labels::new().with("alertname", "DiskFull"),
            alerts: vec![
                alert("a", GroupStatus::Firing),
                alert("b", GroupStatus::Resolved),
            ],
            external_url: "http://vigie:9464".into(),
            notified_at_ms: 0,
            incident: None,
        }
    }

    #[test]
    fn defaults_render_like_alertmanager() {
        let t = NotifyTemplates::defaults();
        for name in [
            "__subject",
            "email.default.subject",
            "email.default.html",
            "slack.default.title",
            "pagerduty.default.description",
        ] {
            assert!(t.has(name), "{name}");
        }
        let n = notification();
        let s = t.text(
            "email",
            "subject",
            "{{ template \"email.default.subject\" . }}",
            &n,
            || "fallback".into(),
        );
        assert_eq!(s, "[FIRING:1] DiskFull (page)");
        let s = t.text(
            "slack",
            "title_link",
            "{{ template \"slack.default.titlelink\" . }}",
            &n,
            String::new,
        );
        assert_eq!(s, "http://vigie:9464/#/alerts?receiver=ops%5C.team");
        let s = t.text(
            "pagerduty",
            "details.firing",
            "{{ template \"pagerduty.default.instances\" .Alerts.Firing }}",
            &n,
            String::new,
        );
        assert_eq!(
            s,
            "Labels:\n - alertname = DiskFull\n - instance = a\n - severity = page\nAnnotations:\n - summary = disk full on a\nSource: http://vigie/graph\n"
        );
        assert_eq!(
            t.text(
                "email",
                "text",
                "{{ (index .Alerts 1).EndsAt }}",
                &n,
                String::new
            ),
            "0001-01-01 00:00:00 +0000 UTC"
        );
    }

    #[test]
    fn render_errors_fall_back_and_count() {
        let t = NotifyTemplates::defaults();
        let before = crate::metrics::TEMPLATE_ERRORS
            .with_label_values(&["slack", "title"])
            .get();
        let s = t.text("slack", "title", "{{ .Nope }}", &notification(), || {
            "plain".into()
        });
        assert_eq!(s, "plain");
        let after = crate::metrics::TEMPLATE_ERRORS
            .with_label_values(&["slack", "title"])
            .get();
        assert_eq!(after, before + 1);
    }

    #[test]
    fn files_load_by_glob_and_bad_ones_say_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.tmpl"),
            "{{ define \"x\" }}X{{ .Status }}{{ end }}",
        )
        .expect("write");
        std::fs::write(dir.path().join("b.txt"), "{{ oops").expect("write");
        let t = load(dir.path(), &["*.tmpl".to_string()]).expect("loads");
        assert!(t.has("x") && t.has("__subject"));
        assert_eq!(
            t.text(
                "email",
                "text",
                "{{ template \"x\" . }}",
                &notification(),
                String::new
            ),
            "Xfiring"
        );
        std::fs::write(
            dir.path().join("c.tmpl"),
            "{{ define \"y\" }}\n  {{ range .Alerts }}{{ end }}",
        )
        .expect("write");
        let e = load(dir.path(), &["*.tmpl".to_string()]).expect_err("c.tmpl is broken");
        assert!(e.file.ends_with("c.tmpl"), "{e}");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
        let e = load(dir.path(), &["*/x.tmpl".to_string()]).expect_err("wild dir");
        assert!(e.message.contains("file name only"), "{e}");
        assert!(
            load(dir.path(), &["none/*.tmpl".to_string()])
                .expect("no match is fine")
                .has("__subject")
        );
    }
}
