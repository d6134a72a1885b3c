//! The search space: one grammar for random and adaptive (TPE) search.
//!
//! Each axis is written in TOML as a table with exactly one *kind* key:
//!
//! | TOML                                      | meaning                                      |
//! |-------------------------------------------|----------------------------------------------|
//! | `{ uniform = [lo, hi] }`                  | float, uniform on `[lo, hi)`                 |
//! | `{ log_uniform = [lo, hi] }`              | float, uniform in `ln` on `[lo, hi)`         |
//! | `{ int = [lo, hi] }`                      | integer in `lo..=hi`                         |
//! | `{ int = [lo, hi], step = 8 }`            | integer in `lo, lo+8, ..., hi`               |
//! | `{ int = [lo, hi], log = true }`          | integer, log-scaled (step 1)                 |
//! | `{ int_uniform = [lo, hi] }`              | older spelling of `int` (same options)       |
//! | `{ choice = [v1, v2, ...] }`              | one of the values (any TOML values)          |
//!
//! Parsing checks the shape (one kind key, no unknown keys, `step`/`log` only on `int`);
//! [`Distribution::validate`] checks the numbers.

use std::collections::BTreeMap;
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One drawn configuration: parameter name to value.
pub type Params = BTreeMap<String, toml::Value>;
/// A search space: parameter name to distribution (drawn in key order).
pub type Space = BTreeMap<String, Distribution>;

/// One axis of a search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDistribution", into = "RawDistribution")]
pub enum Distribution {
    /// `uniform` (`log = false`) or `log_uniform` (`log = true`).
    Float { low: f64, high: f64, log: bool },
    /// `int` / `int_uniform`; `step` is 1 unless given.
    Int {
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    },
    /// `choice`.
    Choice(Vec<toml::Value>),
}

/// The form as written: every key optional, so that both the `toml` and the `figment`
/// deserialisers (and any other self-describing one) can fill it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDistribution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uniform: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_uniform: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int_uniform: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    choice: Option<Vec<toml::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<bool>,
}

/// Why a written axis has the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

const KINDS: &str = "uniform, log_uniform, int, int_uniform or choice";

impl TryFrom<RawDistribution> for Distribution {
    type Error = ShapeError;

    fn try_from(raw: RawDistribution) -> Result<Self, ShapeError> {
        let given: Vec<&str> = [
            ("uniform", raw.uniform.is_some()),
            ("log_uniform", raw.log_uniform.is_some()),
            ("int", raw.int.is_some()),
            ("int_uniform", raw.int_uniform.is_some()),
            ("choice", raw.choice.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
        .collect();
        match given.as_slice() {
            [] => return Err(ShapeError(format!("expected one of {KINDS}"))),
            [_] => {}
            [a, b, ..] => {
                return Err(ShapeError(format!(
                    "`{a}` and `{b}` given together; use exactly one of {KINDS}"
                )))
            }
        }
        let kind = given[0];
        let int = raw.int.or(raw.int_uniform);
        if int.is_none() {
            for (key, present) in [("step", raw.step.is_some()), ("log", raw.log.is_some())] {
                if present {
                    return Err(ShapeError(format!("`{key}` applies only to `int` ranges")));
                }
            }
        }
        let pair = |len: usize| {
            if len == 2 {
                Ok(())
            } else {
                Err(ShapeError(format!(
                    "`{kind}` takes [low, high], got {len} value(s)"
                )))
            }
        };
        Ok(if let Some(b) = raw.uniform.or(raw.log_uniform.clone()) {
            pair(b.len())?;
            Distribution::Float {
                low: b[0],
                high: b[1],
                log: raw.log_uniform.is_some(),
            }
        } else if let Some(b) = int {
            pair(b.len())?;
            Distribution::Int {
                low: b[0],
                high: b[1],
                step: raw.step.unwrap_or(1),
                log: raw.log.unwrap_or(false),
            }
        } else {
            Distribution::Choice(raw.choice.unwrap_or_default())
        })
    }
}

impl From<Distribution> for RawDistribution {
    fn from(d: Distribution) -> Self {
        match d {
            Distribution::Float {
                low,
                high,
                log: false,
            } => Self {
                uniform: Some(vec![low, high]),
                ..Self::default()
            },
            Distribution::Float { low, high, log: true } => Self {
                log_uniform: Some(vec![low, high]),
                ..Self::default()
            },
            Distribution::Int { low, high, step, log } => Self {
                int: Some(vec![low, high]),
                step: (step != 1).then_some(step),
                log: log.then_some(true),
                ..Self::default()
            },
            Distribution::Choice(values) => Self {
                choice: Some(values),
                ..Self::default()
            },
        }
    }
}

/// A TOML number as `f64` (integers included); `None` for anything else.
pub fn numeric(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(x) => Some(*x),
        _ => None,
    }
}

/// TOML equality that treats `2` and `2.0` alike, as a user would.
pub fn values_equal(a: &toml::Value, b: &toml::Value) -> bool {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl fmt::Display for Distribution {
    /// In words, for plans and reports: `log-uniform in [0.0001, 0.01]`, `integer in [16, 64] step 8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Float { low, high, log } => {
                write!(
                    f,
                    "{} in [{low}, {high}]",
                    if *log { "log-uniform" } else { "uniform" }
                )
            }
            Distribution::Int { low, high, step, log } => {
                write!(
                    f,
                    "{}integer in [{low}, {high}]",
                    if *log { "log-scaled " } else { "" }
                )?;
                if *step != 1 {
                    write!(f, " step {step}")?;
                }
                Ok(())
            }
            Distribution::Choice(values) => {
                let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                write!(f, "one of [{}]", v.join(", "))
            }
        }
    }
}

/// The largest magnitude of an integer axis's bounds: 2^53, what an f64 holds exactly.
pub const MAX_INT_BOUND: u64 = 1 << 53;

impl Distribution {
    /// Checks the numbers; the message names no key (the caller prefixes it).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Distribution::Float { low, high, log } => {
                if !low.is_finite() || !high.is_finite() {
                    return Err(format!("bounds must be finite numbers, got [{low}, {high}]"));
                }
                if low >= high {
                    return Err(format!("empty or inverted range [{low}, {high}]"));
                }
                if *log && *low <= 0.0 {
                    return Err("log_uniform needs positive bounds".into());
                }
            }
            Distribution::Int { low, high, step, log } => {
                if low > high {
                    return Err(format!("empty or inverted range [{low}, {high}]"));
                }
                if *step <= 0 {
                    return Err(format!("step must be positive, got {step}"));
                }
                if *log && *step != 1 {
                    return Err(
                        "`step` and `log = true` cannot be combined (a log-scaled int uses step 1)".into(),
                    );
                }
                if *log && *low <= 0 {
                    return Err("a log-scaled int needs positive bounds".into());
                }
                // TPE models integers as floats, which hold every integer only up to 2^53; this
                // also keeps every span and step count of the axis inside an i64.
                if low.unsigned_abs() > MAX_INT_BOUND || high.unsigned_abs() > MAX_INT_BOUND {
                    return Err(format!(
                        "integer bounds must lie within ±{MAX_INT_BOUND}, got [{low}, {high}]"
                    ));
                }
                let span = (*high as i128) - (*low as i128);
                let step = *step as i128;
                if span % step != 0 {
                    let below = *low as i128 + span / step * step;
                    return Err(format!(
                        "range [{low}, {high}] is not a whole number of steps of {step} \
                         (use [{low}, {below}] or [{low}, {}])",
                        below + step
                    ));
                }
            }
            Distribution::Choice(values) => {
                if values.is_empty() {
                    return Err("choice is empty".into());
                }
                for (i, v) in values.iter().enumerate() {
                    if values[..i].iter().any(|w| values_equal(v, w)) {
                        return Err(format!("choice lists {v} twice"));
                    }
                }
            }
        }
        Ok(())
    }

    /// A draw from the prior (uniform over the axis). Assumes [`Self::validate`] passed
    /// (`gen_range` panics on an empty range).
    ///
    /// The forms pixelx's `[random]` search already had draw exactly as it did, so existing
    /// random searches keep their points and run ids:
    /// `uniform` → `gen_range(lo..hi)`; `log_uniform` → `gen_range(ln lo..ln hi).exp()`;
    /// `int` without step or log → `gen_range(lo..=hi)`; `choice` → `values[gen_range(0..len)]`.
    /// An int with a step draws its grid index with `gen_range(0..=n)`; a log-scaled int draws
    /// `gen_range(ln(lo - 1/2)..ln(hi + 1/2))` and rounds its `exp` to the nearest integer, so
    /// every integer gets the mass of its cell `[k - 1/2, k + 1/2)` in log space (as Optuna's
    /// random sampler does).
    pub fn sample(&self, rng: &mut impl Rng) -> toml::Value {
        match self {
            Distribution::Float {
                low,
                high,
                log: false,
            } => toml::Value::Float(rng.gen_range(*low..*high)),
            Distribution::Float { low, high, log: true } => {
                toml::Value::Float(rng.gen_range(low.ln()..high.ln()).exp())
            }
            Distribution::Int {
                low,
                high,
                step: 1,
                log: false,
            } => toml::Value::Integer(rng.gen_range(*low..=*high)),
            Distribution::Int {
                low,
                high,
                step,
                log: false,
            } => {
                let n = (high - low) / step;
                toml::Value::Integer(low + step * rng.gen_range(0..=n))
            }
            Distribution::Int {
                low, high, log: true, ..
            } => {
                let x = rng
                    .gen_range((*low as f64 - 0.5).ln()..(*high as f64 + 0.5).ln())
                    .exp();
                toml::Value::Integer((x.round() as i64).clamp(*low, *high))
            }
            Distribution::Choice(values) => values[rng.gen_range(0..values.len())].clone(),
        }
    }

    /// Whether `v` is a value of this axis. Numbers compare numerically (`2.0` is in
    /// `int = [1, 3]`, `1` is in `uniform = [0, 2]`); float ranges are closed, `[lo, hi]`.
    pub fn contains(&self, v: &toml::Value) -> bool {
        match self {
            Distribution::Float { low, high, .. } => numeric(v).is_some_and(|x| *low <= x && x <= *high),
            Distribution::Int { low, high, step, .. } => numeric(v).is_some_and(|x| {
                x.fract() == 0.0
                    && (*low as f64) <= x
                    && x <= (*high as f64)
                    && *step > 0
                    && (x as i64 - low) % step == 0
            }),
            Distribution::Choice(values) => values.iter().any(|c| values_equal(c, v)),
        }
    }
}

impl Distribution {
    /// Every value of a discrete axis (a choice, or an int's grid), in order; None for a
    /// continuous axis.
    pub fn values(&self) -> Option<Vec<toml::Value>> {
        match self {
            Distribution::Float { .. } => None,
            Distribution::Int { low, high, step, .. } => Some(
                (*low..=*high)
                    .step_by((*step).max(1) as usize)
                    .map(toml::Value::Integer)
                    .collect(),
            ),
            Distribution::Choice(values) => Some(values.clone()),
        }
    }
}

/// Every configuration of a space whose axes are all discrete, in key order (the last axis
/// fastest); None when an axis is continuous or the space holds more than `limit`.
pub fn enumerate(space: &Space, limit: usize) -> Option<Vec<Params>> {
    let axes: Vec<(&String, Vec<toml::Value>)> = space
        .iter()
        .map(|(k, d)| Some((k, d.values()?)))
        .collect::<Option<_>>()?;
    let total = axes
        .iter()
        .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
        .filter(|n| *n <= limit)?;
    Some(
        (0..total)
            .map(|mut i| {
                let mut p = Params::new();
                for (k, values) in axes.iter().rev() {
                    p.insert((*k).clone(), values[i % values.len()].clone());
                    i /= values.len();
                }
                p
            })
            .collect(),
    )
}

/// One prior draw of every axis, in key order (as pixelx's `[random]` search draws).
pub fn sample_params(space: &Space, rng: &mut impl Rng) -> Params {
    space.iter().map(|(k, d)| (k.clone(), d.sample(rng))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn small_discrete_spaces_are_enumerated() {
        let space: Space =
            toml::from_str("a = { choice = [\"x\", \"y\"] }\nb = { int = [0, 6], step = 3 }").unwrap();
        let all = enumerate(&space, 100).unwrap();
        assert_eq!(all.len(), 6);
        assert!(all.iter().all(|p| space.iter().all(|(k, d)| d.contains(&p[k]))));
        assert_eq!(all[1]["b"], toml::Value::Integer(3), "the last axis fastest");
        assert_eq!(enumerate(&space, 5), None, "over the limit");
        let continuous: Space = toml::from_str("c = { uniform = [0, 1] }").unwrap();
        assert_eq!(enumerate(&continuous, 100), None);
    }

    fn parse(s: &str) -> Result<Distribution, String> {
        #[derive(Deserialize)]
        struct W {
            d: Distribution,
        }
        toml::from_str::<W>(&format!("d = {s}"))
            .map(|w| w.d)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn parses_every_form() {
        let f = |low, high, log| Distribution::Float { low, high, log };
        assert_eq!(parse("{ uniform = [0.1, 0.5] }").unwrap(), f(0.1, 0.5, false));
        // Integers are accepted as float bounds.
        assert_eq!(parse("{ uniform = [0, 1] }").unwrap(), f(0.0, 1.0, false));
        assert_eq!(
            parse("{ log_uniform = [1e-4, 1e-2] }").unwrap(),
            f(1e-4, 1e-2, true)
        );
        let i = |low, high, step, log| Distribution::Int { low, high, step, log };
        assert_eq!(parse("{ int = [1, 6] }").unwrap(), i(1, 6, 1, false));
        assert_eq!(parse("{ int_uniform = [1, 6] }").unwrap(), i(1, 6, 1, false));
        assert_eq!(
            parse("{ int = [16, 64], step = 8 }").unwrap(),
            i(16, 64, 8, false)
        );
        assert_eq!(
            parse("{ int = [8, 512], log = true }").unwrap(),
            i(8, 512, 1, true)
        );
        assert_eq!(
            parse(r#"{ choice = [2, "cyclic", 0.5, true] }"#).unwrap(),
            Distribution::Choice(vec![
                toml::Value::Integer(2),
                toml::Value::String("cyclic".into()),
                toml::Value::Float(0.5),
                toml::Value::Boolean(true),
            ])
        );
    }

    #[test]
    fn shape_errors_are_clear() {
        let e = parse("{ uniform = [0, 1], choice = [1] }").unwrap_err();
        assert!(e.contains("`uniform` and `choice` given together"), "{e}");
        let e = parse("{ step = 2 }").unwrap_err();
        assert!(e.contains("expected one of uniform, log_uniform"), "{e}");
        let e = parse("{ uniform = [0, 1], stpe = 2 }").unwrap_err();
        assert!(e.contains("unknown field `stpe`"), "{e}");
        let e = parse("{ uniform = [0, 1], step = 2 }").unwrap_err();
        assert!(e.contains("`step` applies only to `int`"), "{e}");
        let e = parse("{ uniform = [0, 1, 2] }").unwrap_err();
        assert!(e.contains("`uniform` takes [low, high], got 3 value(s)"), "{e}");
        let e = parse("{ int = [1] }").unwrap_err();
        assert!(e.contains("`int` takes [low, high], got 1 value(s)"), "{e}");
        let e = parse("{ int = [1.5, 2] }").unwrap_err();
        assert!(
            e.contains("invalid type: floating point `1.5`, expected i64"),
            "{e}"
        );
    }

    #[test]
    fn validation_messages() {
        let v = |s: &str| parse(s).unwrap().validate();
        assert_eq!(v("{ uniform = [0.1, 0.5] }"), Ok(()));
        assert_eq!(
            v("{ log_uniform = [0.01, 0.0001] }").unwrap_err(),
            "empty or inverted range [0.01, 0.0001]"
        );
        assert_eq!(
            v("{ uniform = [1, 1] }").unwrap_err(),
            "empty or inverted range [1, 1]"
        );
        assert_eq!(
            v("{ log_uniform = [0, 1] }").unwrap_err(),
            "log_uniform needs positive bounds"
        );
        assert_eq!(
            v("{ int = [5, 1] }").unwrap_err(),
            "empty or inverted range [5, 1]"
        );
        assert_eq!(v("{ int = [3, 3] }"), Ok(()));
        assert!(
            v("{ int = [-9223372036854775808, 9223372036854775807], step = 3 }")
                .unwrap_err()
                .contains("within ±9007199254740992"),
            "a span beyond i64 is refused before anything subtracts"
        );
        assert_eq!(
            v("{ int = [1, 9], step = 0 }").unwrap_err(),
            "step must be positive, got 0"
        );
        assert_eq!(
            v("{ int = [16, 250], step = 16 }").unwrap_err(),
            "range [16, 250] is not a whole number of steps of 16 (use [16, 240] or [16, 256])"
        );
        assert!(v("{ int = [16, 256], step = 16, log = true }")
            .unwrap_err()
            .contains("cannot be combined"));
        assert!(v("{ int = [0, 8], log = true }")
            .unwrap_err()
            .contains("positive bounds"));
        assert_eq!(v("{ choice = [] }").unwrap_err(), "choice is empty");
    }

    #[test]
    fn round_trips_through_toml() {
        let text = r#"
            lr = { log_uniform = [1e-4, 1e-2] }
            clip = { uniform = [0.5, 2.0] }
            layers = { int_uniform = [2, 8] }
            fmaps = { int = [16, 64], step = 8 }
            width = { int = [8, 512], log = true }
            schedule = { choice = ["cyclic", "constant", 3] }
        "#;
        let space: Space = toml::from_str(text).unwrap();
        assert_eq!(space.len(), 6);
        let written = toml::to_string(&space).unwrap();
        let back: Space = toml::from_str(&written).unwrap();
        assert_eq!(back, space, "{written}");
        // The old spelling is written back in the new one.
        assert!(written.contains("int = [2, 8]"), "{written}");
        assert!(
            written.contains("step = 8") && written.contains("log = true"),
            "{written}"
        );
    }

    #[test]
    fn deserialises_through_figment() {
        use figment::providers::{Format, Toml};
        #[derive(Deserialize)]
        struct File {
            search: Search,
        }
        #[derive(Deserialize)]
        struct Search {
            space: Space,
        }
        let text = r#"
            [search.space]
            learning_rate = { log_uniform = [1e-4, 1e-2] }
            hidden_fmaps = { int = [16, 64], step = 8 }
            color_levels = { choice = [2, 4] }
            max_norm = { uniform = [1, 2] }
        "#;
        let file: File = figment::Figment::from(Toml::string(text)).extract().unwrap();
        let s = file.search.space;
        assert_eq!(
            s["learning_rate"],
            Distribution::Float {
                low: 1e-4,
                high: 1e-2,
                log: true
            }
        );
        assert_eq!(
            s["hidden_fmaps"],
            Distribution::Int {
                low: 16,
                high: 64,
                step: 8,
                log: false
            }
        );
        assert_eq!(
            s["max_norm"],
            Distribution::Float {
                low: 1.0,
                high: 2.0,
                log: false
            }
        );
        assert!(s["color_levels"].contains(&toml::Value::Integer(4)));

        let bad = "[search.space]\nx = { uniform = [0, 1], choice = [1] }";
        let err = figment::Figment::from(Toml::string(bad))
            .extract::<File>()
            .err()
            .unwrap();
        assert!(err.to_string().contains("given together"), "{err}");
    }

    /// Existing `[random]` searches hash their drawn values into run ids: the old forms must
    /// make exactly the `gen_range` calls pixelx made before.
    #[test]
    fn old_forms_draw_as_before() {
        let space: Space = toml::from_str(
            r#"
            a = { uniform = [0.5, 2.0] }
            b = { log_uniform = [1e-4, 1e-2] }
            c = { int_uniform = [2, 8] }
            d = { choice = ["x", "y", "z"] }
            e = { int = [1, 100] }
            "#,
        )
        .unwrap();
        let mut ours = ChaCha8Rng::seed_from_u64(7);
        let mut direct = ChaCha8Rng::seed_from_u64(7);
        let choices = ["x", "y", "z"];
        for _ in 0..50 {
            let p = sample_params(&space, &mut ours);
            // Key order: a, b, c, d, e.
            assert_eq!(p["a"], toml::Value::Float(direct.gen_range(0.5..2.0)));
            assert_eq!(
                p["b"],
                toml::Value::Float(direct.gen_range(1e-4f64.ln()..1e-2f64.ln()).exp())
            );
            assert_eq!(p["c"], toml::Value::Integer(direct.gen_range(2..=8)));
            assert_eq!(
                p["d"],
                toml::Value::String(choices[direct.gen_range(0..3)].into())
            );
            assert_eq!(p["e"], toml::Value::Integer(direct.gen_range(1..=100)));
        }
    }

    #[test]
    fn new_forms_stay_on_their_grid() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let stepped = Distribution::Int {
            low: 16,
            high: 64,
            step: 8,
            log: false,
        };
        let logged = Distribution::Int {
            low: 1,
            high: 1000,
            step: 1,
            log: true,
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut small = 0;
        for _ in 0..2000 {
            let v = stepped.sample(&mut rng);
            assert!(stepped.contains(&v), "{v}");
            seen.insert(v.as_integer().unwrap());
            let w = logged.sample(&mut rng);
            assert!(logged.contains(&w), "{w}");
            small += usize::from(w.as_integer().unwrap() <= 31);
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            vec![16, 24, 32, 40, 48, 56, 64]
        );
        // Log-scaled: about half the mass lies below sqrt(1000) ~ 31.6.
        assert!((800..1200).contains(&small), "{small}");
    }

    #[test]
    fn contains_compares_numbers_numerically() {
        let f = Distribution::Float {
            low: 0.0,
            high: 2.0,
            log: false,
        };
        assert!(f.contains(&toml::Value::Integer(1)) && f.contains(&toml::Value::Float(2.0)));
        assert!(!f.contains(&toml::Value::Float(2.5)) && !f.contains(&toml::Value::String("1".into())));
        let i = Distribution::Int {
            low: 16,
            high: 64,
            step: 8,
            log: false,
        };
        assert!(i.contains(&toml::Value::Integer(24)) && i.contains(&toml::Value::Float(24.0)));
        assert!(!i.contains(&toml::Value::Integer(20)) && !i.contains(&toml::Value::Float(24.5)));
        let c = Distribution::Choice(vec![toml::Value::Float(2.0), toml::Value::String("a".into())]);
        assert!(c.contains(&toml::Value::Integer(2)) && c.contains(&toml::Value::String("a".into())));
        assert!(!c.contains(&toml::Value::Integer(3)));
    }
}
