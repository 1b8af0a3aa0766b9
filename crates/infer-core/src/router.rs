//! A/B routing: weighted variants, sticky by request key, recorded on the span.

use std::sync::Arc;

use crate::{Error, Model, Result};

/// One variant of a route: a name, a weight and the model serving it.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The variant's name (`control`, `candidate`, …), recorded as `ab.variant`.
    pub name: String,
    /// Its relative weight.
    pub weight: u32,
    /// The model.
    pub model: Arc<Model>,
}

/// Splits traffic between variants by weight, the same key always to the same variant.
///
/// A key is hashed with xxh3-64 (a fixed, documented algorithm: the split is stable across
/// processes, machines and releases) into `[0, total weight)`; variants own consecutive
/// ranges. [`route`](Router::route) records `ab.variant`, `model.name` and `model.version`
/// on the current span (declare them as `tracing::field::Empty` on the request span) and
/// on a `route` span it returns.
#[derive(Debug, Clone)]
pub struct Router {
    variants: Vec<Variant>,
    total: u64,
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The chosen variant's name.
    pub variant: String,
    /// Its model.
    pub model: Arc<Model>,
    /// A span carrying the decision (`ab.variant`, `model.name`, `model.version`), a child
    /// of the span current when routing; enter it while serving the request.
    pub span: tracing::Span,
}

impl Router {
    /// A router over these variants.
    ///
    /// # Errors
    /// [`Error::Router`] when there are no variants or the weights sum to 0.
    pub fn new(variants: Vec<Variant>) -> Result<Self> {
        let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
        if variants.is_empty() || total == 0 {
            return Err(Error::Router(
                "needs at least one variant with a nonzero weight".into(),
            ));
        }
        Ok(Router { variants, total })
    }

    /// The variant index for a key (no span recorded).
    pub fn pick(&self, key: &[u8]) -> usize {
        // Multiply-shift maps the 64-bit hash onto [0, total) without modulo bias worth
        // measuring (total is tiny against 2^64).
        let h = xxhash_rust::xxh3::xxh3_64(key);
        let point = ((u128::from(h) * u128::from(self.total)) >> 64) as u64;
        let mut upto = 0;
        for (i, v) in self.variants.iter().enumerate() {
            upto += u64::from(v.weight);
            if point < upto {
                return i;
            }
        }
        self.variants.len() - 1
    }

    /// Routes a request by key and records the choice on the current span and a new
    /// `route` span.
    pub fn route(&self, key: &[u8]) -> Routed {
        self.routed(self.pick(key))
    }

    /// Routes the `turn`-th request that has no key: turns walk the weight ranges in order,
    /// so every `total weight` turns each variant gets exactly its weight (a counter shared by
    /// the callers makes an exact split). Records the choice as [`route`](Router::route) does.
    pub fn route_turn(&self, turn: u64) -> Routed {
        let mut at = turn % self.total;
        let i = self
            .variants
            .iter()
            .position(|v| {
                let w = u64::from(v.weight);
                let here = at < w;
                at = at.saturating_sub(w);
                here
            })
            .unwrap_or(0);
        self.routed(i)
    }

    /// Variant `i`, recorded on the current span and a new `route` span.
    fn routed(&self, i: usize) -> Routed {
        let v = &self.variants[i];
        let d = v.model.descriptor();
        let version = d.version.to_string();
        let current = tracing::Span::current();
        current.record("ab.variant", v.name.as_str());
        current.record("model.name", d.name.as_str());
        current.record("model.version", version.as_str());
        let span = tracing::info_span!(
            "route",
            ab.variant = %v.name,
            model.name = %d.name,
            model.version = %version
        );
        Routed {
            variant: v.name.clone(),
            model: Arc::clone(&v.model),
            span,
        }
    }

    /// The variants.
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }
}
