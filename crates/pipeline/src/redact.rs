//! Redaction of named fields in applications' structured logs.

use std::fmt;

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
