//! When two values, or two configurations, are the same: numbers compare numerically, and on a
//! continuous axis values within the axis's resolution are one value, so that a study over a
//! continuous space never counts a near-duplicate as a new configuration.

use super::space::{numeric, values_equal, Distribution, Params, Space};

/// How close two values of a continuous axis may be and still be the same configuration: a
/// billionth of the axis's range (in `ln` for a log axis). Far below any difference a model
/// trains differently on, far above float rounding (`exp(ln x)` need not give `x` back).
pub const FLOAT_RESOLUTION: f64 = 1e-9;

impl Distribution {
    /// Whether `a` and `b` are the same value of this axis: numerically equal for ints and
    /// choices ([`values_equal`]); within [`FLOAT_RESOLUTION`] of the range for a float axis,
    /// so that a continuous study never counts a near-duplicate as a new configuration.
    pub fn same_value(&self, a: &toml::Value, b: &toml::Value) -> bool {
        match (self, numeric(a), numeric(b)) {
            (Distribution::Float { low, high, log }, Some(x), Some(y)) => {
                let t = |v: f64| if *log && v > 0.0 { v.ln() } else { v };
                let range = (t(*high) - t(*low)).abs();
                x == y || (t(x) - t(y)).abs() <= FLOAT_RESOLUTION * range
            }
            _ => values_equal(a, b),
        }
    }
}

/// Whether `b` gives every parameter of `a` the same value (axes of `space` by
/// [`Distribution::same_value`], any other key by [`values_equal`]).
pub fn same_params(space: &Space, a: &Params, b: &Params) -> bool {
    a.iter().all(|(k, v)| {
        b.get(k).is_some_and(|w| match space.get(k) {
            Some(dist) => dist.same_value(v, w),
            None => values_equal(v, w),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Floats within a billionth of the axis's range (in ln for a log axis) are the same value:
    /// `exp(ln x)` and a value recorded through JSON are not new configurations; a step a model
    /// could tell apart is.
    #[test]
    fn near_duplicate_floats_are_the_same_value() {
        let log = Distribution::Float {
            low: 1e-4,
            high: 1e-2,
            log: true,
        };
        let lin = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let f = toml::Value::Float;
        assert!(log.same_value(&f(1e-3), &f(1e-3_f64.ln().exp())));
        assert!(log.same_value(&f(1e-3), &f(1e-3 * (1.0 + 1e-12))));
        assert!(!log.same_value(&f(1e-3), &f(1e-3 * (1.0 + 1e-6))));
        assert!(lin.same_value(&f(0.5), &f(0.5 + 1e-12)));
        assert!(!lin.same_value(&f(0.5), &f(0.5 + 1e-6)));
        assert!(lin.same_value(&f(0.0), &toml::Value::Integer(0)));
        let ints = Distribution::Int {
            low: 0,
            high: 10,
            step: 1,
            log: false,
        };
        assert!(!ints.same_value(&toml::Value::Integer(3), &toml::Value::Integer(4)));
        let space: Space = [("lr".to_owned(), log), ("w".to_owned(), ints)].into();
        let p = |lr: f64, w: i64| -> Params {
            [
                ("lr".to_owned(), f(lr)),
                ("w".to_owned(), toml::Value::Integer(w)),
            ]
            .into()
        };
        assert!(same_params(&space, &p(1e-3, 4), &p(1e-3 * (1.0 + 1e-12), 4)));
        assert!(!same_params(&space, &p(1e-3, 4), &p(1e-3 * (1.0 + 1e-12), 5)));
        assert!(!same_params(&space, &p(1e-3, 4), &p(2e-3, 4)));
    }
}
