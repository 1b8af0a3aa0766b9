//! Redaction of named fields in applications' structured logs.

use std::fmt;
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The fields [`Redact::default`] hides.
pub const DEFAULT_REDACTED: [&str; 4] = ["token", "prompt", "authorization", "password"];

/// A `tracing-subscriber` field formatter that writes `name=value` pairs (the message
/// first, bare) straight to the output, except that the value of every field whose name is
/// in the list (case-insensitive) is replaced by `[REDACTED]`. Nothing is copied: the other
/// fields are formatted directly into the writer, as the default formatter does.
///
/// ```
/// use inferkit_pipeline::Redact;
/// let subscriber = tracing_subscriber::fmt()
///     .fmt_fields(Redact::default().with_field("api_key"))
///     .with_writer(std::io::sink)
///     .finish();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(user = "ada", token = "s3cr3t", "signed in"); // token=[REDACTED]
/// });
/// ```
#[derive(Debug, Clone)]
pub struct Redact {
    fields: Vec<String>,
}

impl Default for Redact {
    fn default() -> Self {
        Redact::new(DEFAULT_REDACTED)
    }
}

impl Redact {
    /// Redacts exactly these fields.
    pub fn new<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Redact {
            fields: fields.into_iter().map(Into::into).collect(),
        }
    }

    /// Redacts one more field.
    #[must_use]
    pub fn with_field(mut self, name: impl Into<String>) -> Self {
        self.fields.push(name.into());
        self
    }

    /// Whether a field of this name is redacted.
    pub fn redacts(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.eq_ignore_ascii_case(name))
    }
}

impl<'w> FormatFields<'w> for Redact {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            redact: self,
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'a, 'w> {
    redact: &'a Redact,
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_, '_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let name = field.name();
        self.result = if self.redact.redacts(name) {
            write!(self.writer, "{sep}{name}=[REDACTED]")
        } else if name == "message" {
            write!(self.writer, "{sep}{value:?}")
        } else {
            write!(self.writer, "{sep}{name}={value:?}")
        };
    }
}

impl Visit for Visitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, &format_args!("{value}"));
        } else {
            self.write(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, value);
    }
}

/// The same redaction for JSON lines: a `tracing-subscriber` event formatter writing one
/// JSON object per event — `timestamp` (RFC 3339, UTC), `level`, `target`, `fields` (the
/// message and every other field, numbers and booleans as JSON values, the rest as strings)
/// and `spans` (outermost first, each `{"name": …, "fields": "…"}` with its fields as the
/// subscriber's field formatter wrote them: pair it with `.fmt_fields(Redact)` so span
/// fields are redacted too). A redacted field's value is `"[REDACTED]"`. Values are escaped
/// straight into the output, never copied.
///
/// ```
/// use inferkit_pipeline::Redact;
/// let subscriber = tracing_subscriber::fmt()
///     .fmt_fields(Redact::default())
///     .event_format(Redact::default().json())
///     .with_writer(std::io::sink)
///     .finish();
/// tracing::subscriber::with_default(subscriber, || {
///     // {"timestamp":"…","level":"INFO","target":"…","fields":{"message":"signed in","user":"ada","token":"[REDACTED]"},"spans":[]}
///     tracing::info!(user = "ada", token = "s3cr3t", "signed in");
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct RedactJson {
    redact: Redact,
}

impl Redact {
    /// This redaction as a JSON-lines event formatter.
    pub fn json(self) -> RedactJson {
        RedactJson { redact: self }
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for RedactJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut Escape(&mut w)))?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_str("\",\"target\":\"")?;
        Escape(&mut w).write_str(meta.target())?;
        w.write_str("\",\"fields\":{")?;
        let mut v = JsonVisitor {
            redact: &self.redact,
            writer: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        w.write_str("},\"spans\":[")?;
        if let Some(scope) = ctx.event_scope() {
            for (i, span) in scope.from_root().enumerate() {
                let sep = if i == 0 {
                    "{\"name\":\""
                } else {
                    ",{\"name\":\""
                };
                w.write_str(sep)?;
                Escape(&mut w).write_str(span.name())?;
                w.write_str("\",\"fields\":\"")?;
                let ext = span.extensions();
                if let Some(f) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    Escape(&mut w).write_str(f)?;
                }
                w.write_str("\"}")?;
            }
        }
        w.write_str("]}\n")
    }
}

/// Writes JSON string content: quotes, backslashes and control characters escaped.
struct Escape<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let esc = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if (c as u32) < 0x20 => {
                    self.0.write_str(&s[start..i])?;
                    write!(self.0, "\\u{:04x}", c as u32)?;
                    start = i + 1;
                    continue;
                }
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            self.0.write_str(esc)?;
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

struct JsonVisitor<'a, 'w, 'b> {
    redact: &'a Redact,
    writer: &'b mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl JsonVisitor<'_, '_, '_> {
    /// Writes `"name":` and then the value, raw (a JSON number or boolean) or as a string;
    /// a redacted field's value is never looked at.
    fn field(&mut self, field: &Field, raw: Option<&dyn fmt::Display>, text: &dyn fmt::Display) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "\"" } else { ",\"" };
        self.first = false;
        let name = field.name();
        self.result = (|| {
            let w = &mut *self.writer;
            w.write_str(sep)?;
            Escape(w).write_str(name)?;
            w.write_str("\":")?;
            if self.redact.redacts(name) {
                return w.write_str("\"[REDACTED]\"");
            }
            match raw {
                Some(v) => write!(w, "{v}"),
                None => {
                    w.write_str("\"")?;
                    write!(Escape(w), "{text}")?;
                    w.write_str("\"")
                }
            }
        })();
    }
}

impl Visit for JsonVisitor<'_, '_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, None, &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, Some(&value), &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, Some(&value), &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, Some(&value), &value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, Some(&value), &value);
        } else {
            self.field(field, None, &value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, None, &format_args!("{value:?}"));
    }
}
