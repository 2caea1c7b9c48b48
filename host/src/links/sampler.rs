//! `links.sampler`: keeps a share of vCons and drops the rest.
//!
//! Options as the Python module: `method` (`percentage` | `rate` | `modulo` | `time_based`),
//! `value` (default 50), `seed` (default none).
//! - `percentage`: keep when a uniform draw in [0, 100) is ≤ `value`;
//! - `rate`: keep when an exponential draw with mean `value` is ≤ 1 (probability
//!   1 − e^(−1/value));
//! - `modulo`: keep when the first 8 hex digits of sha256(uuid), as a number, mod `value` is 0 —
//!   deterministic, so every host agrees on every uuid;
//! - `time_based`: keep when the current Unix second mod `value` is 0.
//!
//! With a `seed`, the Python module reseeds its global generator on every call, so every vCon
//! gets the same decision; a fresh generator seeded with `seed` per decision does the same here.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::{parse_options, Link, LinkError, Outcome, WorkingVcon};

#[derive(Debug, Clone, Copy, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Method {
    Percentage,
    Rate,
    Modulo,
    TimeBased,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_method")]
    method: Method,
    #[serde(default = "default_value")]
    value: f64,
    #[serde(default)]
    seed: Option<u64>,
}

fn default_method() -> Method {
    Method::Percentage
}

fn default_value() -> f64 {
    50.0
}

/// The `sampler` link.
#[derive(Debug)]
pub(super) struct Sampler {
    method: Method,
    value: f64,
    seed: Option<u64>,
}

impl Sampler {
    pub(super) fn from_options(options: serde_json::Value) -> Result<Self, String> {
        let options: Options = parse_options("sampler", options)?;
        let integral = matches!(options.method, Method::Modulo | Method::TimeBased);
        if options.value.is_nan()
            || options.value <= 0.0
            || (integral && options.value.fract() != 0.0)
        {
            return Err(format!(
                "sampler options: value: must be a positive {}number, got {}",
                if integral { "whole " } else { "" },
                options.value
            ));
        }
        Ok(Self {
            method: options.method,
            value: options.value,
            seed: options.seed,
        })
    }

    fn keep(&self, uuid: &str) -> bool {
        let draw = |f: &mut dyn FnMut(&mut dyn rand::RngCore) -> bool| match self.seed {
            Some(seed) => f(&mut StdRng::seed_from_u64(seed)),
            None => f(&mut rand::rng()),
        };
        match self.method {
            Method::Percentage => draw(&mut |rng| rng.random_range(0.0..100.0) <= self.value),
            Method::Rate => draw(&mut |rng| {
                // Inverse transform: an exponential draw with mean `value`.
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                -self.value * u.ln() <= 1.0
            }),
            Method::Modulo => {
                let digest = Sha256::digest(uuid.as_bytes());
                let first8 = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
                u64::from(first8) % (self.value as u64) == 0
            }
            Method::TimeBased => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                now.is_multiple_of(self.value as u64)
            }
        }
    }
}

impl Link for Sampler {
    fn run(&self, vcon: &mut WorkingVcon) -> Result<Outcome, LinkError> {
        Ok(if self.keep(vcon.uuid()) {
            Outcome::Continue
        } else {
            Outcome::Drop
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(options: serde_json::Value) -> Sampler {
        Sampler::from_options(options).unwrap()
    }

    #[test]
    fn modulo_is_deterministic_and_roughly_proportional() {
        let s = sampler(serde_json::json!({"method": "modulo", "value": 4}));
        let uuids: Vec<String> = (0..4000)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect();
        let kept = uuids.iter().filter(|u| s.keep(u)).count();
        assert!((800..1200).contains(&kept), "kept {kept} of 4000 at 1/4");
        assert!(uuids.iter().all(|u| s.keep(u) == s.keep(u)));
    }

    #[test]
    fn percentage_bounds() {
        let all = sampler(serde_json::json!({"method": "percentage", "value": 100}));
        assert!((0..1000).all(|_| all.keep("u")));
        let half = sampler(serde_json::json!({}));
        let kept = (0..4000).filter(|_| half.keep("u")).count();
        assert!((1700..2300).contains(&kept), "kept {kept} of 4000 at 50%");
    }

    #[test]
    fn a_seed_gives_every_vcon_the_same_decision() {
        let s = sampler(serde_json::json!({"value": 50, "seed": 7}));
        let first = s.keep("a");
        assert!((0..100).all(|i| s.keep(&format!("{i}")) == first));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(Sampler::from_options(serde_json::json!({"method": "coinflip"})).is_err());
        assert!(Sampler::from_options(serde_json::json!({"value": 0})).is_err());
        assert!(
            Sampler::from_options(serde_json::json!({"method": "modulo", "value": 2.5})).is_err()
        );
    }
}
