//! Small statistics shared by the search methods, the estimates and their tests: one median,
//! so that "the median" means the same thing everywhere.

/// The median with linear interpolation between the two middle values (numpy's
/// `percentile(.., 50)`), or None for no values. Values are ordered by `f64::total_cmp`, so a
/// NaN counts as larger than any number.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    })
}

/// The [`median`] of the finite values only (a NaN or infinite measurement is left out), or
/// None when there are none.
pub fn median_of_finite(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|x| x.is_finite());
    median(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interpolates_between_the_middle_values() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![1.0, f64::NAN, 2.0]), Some(2.0));
        assert_eq!(
            median_of_finite(vec![1.0, f64::NAN, f64::INFINITY, 2.0]),
            Some(1.5)
        );
        assert_eq!(median_of_finite(vec![f64::NAN]), None);
    }
}
