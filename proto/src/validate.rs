//! Structural validation of decoded requests and responses: reports every violation with its path.

use std::collections::HashMap;
use std::fmt;

use crate::openrtb::{BidRequest, BidResponse, Imp};
use crate::Micros;

/// One broken rule, located by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending field, e.g. `imp[1].id`.
    pub path: String,
    /// What is wrong, e.g. "duplicate of imp[0].id".
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every violation found in one object, in document order (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

#[derive(Default)]
struct Collector(Vec<Violation>);

impl Collector {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn finish(self) -> Result<(), Violations> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Violations(self.0))
        }
    }
}

/// Checks the structural rules of OpenRTB 2.6 that decoding alone cannot enforce.
pub fn validate_request(req: &BidRequest) -> Result<(), Violations> {
    let mut c = Collector::default();
    if req.id.is_empty() {
        c.push("id", "must not be empty");
    }
    if req.imp.is_empty() {
        c.push("imp", "at least one imp is required");
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(req.imp.len());
    for (i, imp) in req.imp.iter().enumerate() {
        if !imp.id.is_empty() {
            if let Some(first) = seen.insert(&imp.id, i) {
                c.push(
                    format!("imp[{i}].id"),
                    format!("duplicate of imp[{first}].id"),
                );
                // Keep pointing later duplicates at the first occurrence.
                seen.insert(&imp.id, first);
            }
        }
        validate_imp(&mut c, i, imp);
    }
    let contexts = [req.site.is_some(), req.app.is_some(), req.dooh.is_some()];
    if contexts.iter().filter(|present| **present).count() > 1 {
        let names: Vec<&str> = ["site", "app", "dooh"]
            .into_iter()
            .zip(contexts)
            .filter_map(|(name, present)| present.then_some(name))
            .collect();
        c.push(
            names[1],
            format!(
                "at most one of site, app and dooh is allowed (found {})",
                names.join(", ")
            ),
        );
    }
    if let Some(at) = req.at {
        if !(at == 1 || at == 2 || at > 500) {
            c.push(
                "at",
                format!("auction type {at} is not 1, 2 or exchange specific (>500)"),
            );
        }
    }
    for (i, cur) in req.cur.iter().enumerate() {
        if !is_currency_code(cur) {
            c.push(
                format!("cur[{i}]"),
                format!("{cur:?} is not a 3-letter currency code"),
            );
        }
    }
    c.finish()
}

fn validate_imp(c: &mut Collector, i: usize, imp: &Imp) {
    if imp.id.is_empty() {
        c.push(format!("imp[{i}].id"), "must not be empty");
    }
    if imp.banner.is_none() && imp.video.is_none() && imp.audio.is_none() && imp.native.is_none() {
        c.push(
            format!("imp[{i}]"),
            "at least one of banner, video, audio or native is required",
        );
    }
    if let Some(video) = &imp.video {
        if video.mimes.is_empty() {
            c.push(
                format!("imp[{i}].video.mimes"),
                "at least one mime type is required",
            );
        }
    }
    if let Some(audio) = &imp.audio {
        if audio.mimes.is_empty() {
            c.push(
                format!("imp[{i}].audio.mimes"),
                "at least one mime type is required",
            );
        }
    }
    if let Some(native) = &imp.native {
        if native.request.is_empty() {
            c.push(format!("imp[{i}].native.request"), "must not be empty");
        }
    }
    if imp.bidfloor < Micros::ZERO {
        c.push(format!("imp[{i}].bidfloor"), "must not be negative");
    }
    if let Some(pmp) = &imp.pmp {
        for (d, deal) in pmp.deals.iter().enumerate() {
            if deal.id.is_empty() {
                c.push(format!("imp[{i}].pmp.deals[{d}].id"), "must not be empty");
            }
            if deal.bidfloor < Micros::ZERO {
                c.push(
                    format!("imp[{i}].pmp.deals[{d}].bidfloor"),
                    "must not be negative",
                );
            }
        }
    }
    for (m, metric) in imp.metric.iter().enumerate() {
        if metric.r#type.is_empty() {
            c.push(format!("imp[{i}].metric[{m}].type"), "must not be empty");
        }
        if !(0.0..=1.0).contains(&metric.value) {
            c.push(
                format!("imp[{i}].metric[{m}].value"),
                format!("{} is outside 0.0..=1.0", metric.value),
            );
        }
    }
}

fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks the structural rules of a bid response: bid ids, impression ids and prices.
pub fn validate_response(resp: &BidResponse) -> Result<(), Violations> {
    let mut c = Collector::default();
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (s, seatbid) in resp.seatbid.iter().enumerate() {
        for (b, bid) in seatbid.bid.iter().enumerate() {
            let at = format!("seatbid[{s}].bid[{b}]");
            if bid.id.is_empty() {
                c.push(format!("{at}.id"), "must not be empty");
            } else if let Some(first) = seen.get(bid.id.as_str()) {
                c.push(format!("{at}.id"), format!("duplicate of {first}.id"));
            } else {
                seen.insert(&bid.id, at.clone());
            }
            if bid.impid.is_empty() {
                c.push(format!("{at}.impid"), "must not be empty");
            }
            if bid.price < Micros::ZERO {
                c.push(format!("{at}.price"), "must not be negative");
            }
        }
    }
    c.finish()
}
