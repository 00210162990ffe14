//! Numbers for people: report tables, prose and plot axes.
//!
//! A report column shows one unit at one scale with one number of decimals,
//! and says which in its header (`MAE (ms)`); its cells are bare numbers.
//! [`Column::fit`] picks the scale and decimals from the column's values, so
//! `1.322e6` never sits next to `146117.0814`: there is no exponent notation
//! anywhere. Tables whose rows have different units (one row per model
//! target) are split into one table per unit instead.
//!
//! ```
//! use hyperfake_core::format::{Column, Unit};
//! // Errors of a runtime model, in ns: shown in ms, 3 significant digits.
//! let mae = Column::fit(Unit::Nanos, [12_640_000.0, 950_000.0]);
//! assert_eq!(mae.header("MAE"), "MAE (ms)");
//! assert_eq!(mae.cell(12_640_000.0), "12.64");
//! assert_eq!(mae.cell(950_000.0), "0.95");
//! assert_eq!(mae.quantity(950_000.0), "0.95 ms");
//! let ram = Column::fit(Unit::Bytes, [2_281_000.0]);
//! assert_eq!(ram.quantity(2_281_000.0), "2.18 MiB");
//! ```

/// What a column's numbers measure, in the unit the data carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A duration in nanoseconds; shown in ns, µs, ms or s.
    Nanos,
    /// A size in bytes; shown in B, KiB, MiB or GiB (1024-based).
    Bytes,
    /// CPU in cores; always three decimals.
    Cores,
    /// A unitless statistic (R², KS distance, a ratio); always three decimals.
    Ratio,
    /// A percentage (`72.4` is 72.4 %); always one decimal.
    Percent,
    /// A count; an integer.
    Count,
    /// A number of no known unit (a payload feature); significant digits.
    Plain,
}

/// Significant digits [`Column::fit`] gives the column's largest value.
pub const SIGNIFICANT: i32 = 3;
/// Significant digits [`Column::fit`] gives the column's smallest non-zero value.
pub const SIGNIFICANT_SMALLEST: i32 = 2;
/// At most this many decimals: finer than that a value reads as zero.
pub const MAX_DECIMALS: usize = 3;
/// [`Column::fit`] ignores values below this fraction of the largest when it
/// picks the decimals.
pub const ZERO_FRACTION: f64 = 1e-6;
/// Shown for a missing or non-finite value.
pub const MISSING: &str = "–";

/// A plot axis goes log-scale when its positive values span at least this
/// factor (two orders of magnitude) …
pub const LOG_AXIS_SPAN: f64 = 100.0;
/// … or when the largest value is at least this many times the median (a
/// heavy tail that would squash the bulk of the points against zero).
pub const LOG_AXIS_TAIL: f64 = 10.0;

impl Unit {
    /// The unit of a column from the unit names `docs/units.md` uses
    /// (`ns`, `bytes`, `cores`, `count`); anything else is [`Unit::Plain`].
    pub fn from_name(name: &str) -> Unit {
        match name {
            "ns" => Unit::Nanos,
            "bytes" => Unit::Bytes,
            "cores" => Unit::Cores,
            "count" => Unit::Count,
            _ => Unit::Plain,
        }
    }

    /// The scales to choose from, smallest first: (symbol, base units per shown unit).
    fn scales(self) -> &'static [(&'static str, f64)] {
        const KIB: f64 = 1024.0;
        match self {
            Unit::Nanos => &[("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)],
            Unit::Bytes => &[("B", 1.0), ("KiB", KIB), ("MiB", KIB * KIB), ("GiB", KIB * KIB * KIB)],
            Unit::Cores => &[("cores", 1.0)],
            Unit::Percent => &[("%", 1.0)],
            Unit::Ratio | Unit::Count | Unit::Plain => &[("", 1.0)],
        }
    }

    /// Decimals fixed by the unit, whatever the values.
    fn fixed_decimals(self) -> Option<usize> {
        match self {
            Unit::Cores | Unit::Ratio => Some(3),
            Unit::Percent => Some(1),
            Unit::Count => Some(0),
            Unit::Nanos | Unit::Bytes | Unit::Plain => None,
        }
    }
}

/// How every cell of one column is written: a unit, a scale of it and a
/// number of decimals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    unit: Unit,
    symbol: &'static str,
    /// Base units (ns, bytes) per shown unit: 1e6 for ms.
    per: f64,
    decimals: usize,
}

impl Column {
    /// The column for `values` (in `unit`'s base: ns, bytes, …): the largest
    /// scale in which the largest |value| is at least 1, and enough decimals
    /// for [`SIGNIFICANT`] digits of the largest and [`SIGNIFICANT_SMALLEST`]
    /// of the smallest non-zero value (above [`ZERO_FRACTION`] of the
    /// largest), at most [`MAX_DECIMALS`]. Cores,
    /// ratios, percentages and counts have fixed decimals. Non-finite
    /// values are ignored.
    pub fn fit(unit: Unit, values: impl IntoIterator<Item = f64>) -> Column {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).map(f64::abs).collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        // Values a millionth of the largest are rounding noise (a perfect
        // model's 5e-15 B error), not a reason for more decimals.
        let min = values.iter().copied().filter(|v| *v > max * ZERO_FRACTION).fold(f64::INFINITY, f64::min);
        let scales = unit.scales();
        let (symbol, per) = scales.iter().rev().find(|(_, per)| max >= *per).unwrap_or(&scales[0]);
        let decimals = unit.fixed_decimals().unwrap_or_else(|| {
            if min.is_infinite() {
                return 0;
            }
            // The decade of a finite, positive value: a small integer.
            #[allow(clippy::cast_possible_truncation)]
            let wanted = |v: f64, digits: i32| digits - 1 - (v / per).log10().floor() as i32;
            let d = wanted(max, SIGNIFICANT).max(wanted(min, SIGNIFICANT_SMALLEST));
            usize::try_from(d).unwrap_or(0).min(MAX_DECIMALS)
        });
        Column { unit, symbol, per: *per, decimals }
    }

    /// Durations in milliseconds with `decimals` decimals, whatever the values
    /// (for reports that keep every latency in ms).
    pub const fn millis(decimals: usize) -> Column {
        Column { unit: Unit::Nanos, symbol: "ms", per: 1e6, decimals }
    }

    /// `unit` in its base scale (ns, B, …) with `decimals` decimals.
    pub fn fixed(unit: Unit, decimals: usize) -> Column {
        let (symbol, per) = unit.scales()[0];
        Column { unit, symbol, per, decimals }
    }

    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// The shown unit: `ms`, `MiB`, `cores`, `%`, or empty for unitless columns.
    pub fn symbol(&self) -> &'static str {
        self.symbol
    }

    pub fn decimals(&self) -> usize {
        self.decimals
    }

    /// A header naming the column and its unit: `MAE (ms)`, or just `R²`.
    pub fn header(&self, name: &str) -> String {
        if self.symbol.is_empty() { name.to_string() } else { format!("{name} ({})", self.symbol) }
    }

    /// `v` (in the unit's base) in the shown scale, e.g. for plotting.
    pub fn scaled(&self, v: f64) -> f64 {
        v / self.per
    }

    /// A cell: the value in the column's scale and decimals, without the unit;
    /// `–` when it is not finite. Negative values get a minus sign (−), and a
    /// value that rounds to zero has none.
    pub fn cell(&self, v: f64) -> String {
        if !v.is_finite() {
            return MISSING.to_string();
        }
        let text = format!("{:.*}", self.decimals, (v / self.per).abs());
        if v < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
            format!("−{text}")
        } else {
            text
        }
    }

    /// [`Column::cell`], or `–` for `None`.
    pub fn cell_opt(&self, v: Option<f64>) -> String {
        v.map_or_else(|| MISSING.to_string(), |v| self.cell(v))
    }

    /// A difference: like [`Column::cell`] with a `+` on positive values (`+1.06`, `−0.35`, `0.00`).
    pub fn signed(&self, v: f64) -> String {
        let text = self.cell(v);
        if v > 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
            format!("+{text}")
        } else {
            text
        }
    }

    /// The value with its unit, for prose: `12.6 ms`, `0.056 cores`, `0.841`.
    pub fn quantity(&self, v: f64) -> String {
        with_symbol(self.cell(v), self.symbol)
    }

    /// [`Column::signed`] with its unit: `+1.32 ms`.
    pub fn signed_quantity(&self, v: f64) -> String {
        with_symbol(self.signed(v), self.symbol)
    }
}

fn with_symbol(text: String, symbol: &str) -> String {
    if symbol.is_empty() || text == MISSING { text } else { format!("{text} {symbol}") }
}

/// One value with its unit, for prose, at [`Column::fit`]'s scale for it alone.
pub fn quantity(unit: Unit, v: f64) -> String {
    Column::fit(unit, [v]).quantity(v)
}

/// A tick label of a linear axis (already in the shown scale): as few
/// decimals as the tick needs (`20`, `2.5`, `0.05`), never an exponent.
pub fn axis_tick(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".to_string(),
        t => t.replacen('-', "−", 1),
    }
}

/// A tick label of a count axis: whole numbers only (plotters also puts ticks
/// at halves, which a count never is).
pub fn count_tick(v: f64) -> String {
    if v.is_finite() && (v - v.round()).abs() < 1e-9 { axis_tick(v.round()) } else { String::new() }
}

/// A tick label of a log axis: only 1, 2 and 5 times a power of ten are
/// labelled (plotters puts a tick at every integer multiple), the others are
/// left blank.
pub fn log_tick(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
        axis_tick(v)
    } else {
        String::new()
    }
}

/// Where a log axis whose smallest value is `min` (positive) starts: the
/// power of ten at or below it, so that the axis has a labelled tick below the
/// data. Nudged down a little: plotters puts its first tick at the first power
/// of ten at or above the start, computed in floating point, and 10^-3
/// computed back from its logarithm can land just above 0.001.
pub fn log_axis_start(min: f64) -> f64 {
    let decade = min.log10();
    // log10(1000) is 2.9999999999999996.
    let decade = if (decade - decade.round()).abs() < 1e-9 { decade.round() } else { decade.floor() };
    10f64.powf(decade) * 0.999
}

/// Whether a plot axis over `values` should be log-scale: the finite values
/// are (all but at most 1 %) positive, and they span [`LOG_AXIS_SPAN`] or
/// have a tail of [`LOG_AXIS_TAIL`] times the median. A log axis cannot show
/// the few non-positive values; callers say so on the plot.
pub fn wants_log_axis(values: &[f64]) -> bool {
    let finite = values.iter().filter(|v| v.is_finite()).count();
    let mut positive: Vec<f64> = values.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    if positive.len() < 2 || (finite - positive.len()) * 100 > finite {
        return false;
    }
    positive.sort_by(f64::total_cmp);
    let (min, max, median) = (positive[0], positive[positive.len() - 1], positive[positive.len() / 2]);
    max / min >= LOG_AXIS_SPAN || max / median >= LOG_AXIS_TAIL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_scale_of_the_largest_value() {
        let c = Column::fit(Unit::Nanos, [1.157e7, 2.237e7, 5.608e6, 8.681e7]);
        assert_eq!(c.symbol(), "ms");
        assert_eq!(c.header("MAE"), "MAE (ms)");
        // 3 significant digits of 86.81, 2 of 5.608: one decimal for all.
        assert_eq!([c.cell(1.157e7), c.cell(8.681e7), c.cell(5.608e6)], ["11.6", "86.8", "5.6"]);
        let us = Column::fit(Unit::Nanos, [475.1, 7869.8]);
        assert_eq!((us.symbol(), us.cell(475.1), us.cell(7869.8)), ("µs", "0.48".into(), "7.87".into()));
        assert_eq!(Column::fit(Unit::Nanos, [3.5e9]).quantity(3.5e9), "3.50 s");
        assert_eq!(Column::fit(Unit::Nanos, [812.0]).quantity(812.0), "812 ns");
    }

    #[test]
    fn small_values_keep_two_significant_digits_up_to_three_decimals() {
        // The decomposition of a latency: 0.002 ms next to 151 ms.
        let c = Column::fit(Unit::Nanos, [151_289_000.0, 2_000.0]);
        assert_eq!((c.cell(151_289_000.0), c.cell(2_000.0)), ("151.289".into(), "0.002".into()));
        // Rounding noise reads as zero, not as 5.414e-15, and adds no decimals.
        let c = Column::fit(Unit::Bytes, [5.414e-15, 0.174, 197.2]);
        assert_eq!([c.cell(5.414e-15), c.cell(0.174), c.cell(197.2)], ["0.00", "0.17", "197.20"]);
        let c = Column::fit(Unit::Bytes, [0.0004, 0.5]);
        assert_eq!((c.cell(0.0004), c.cell(0.5)), ("0.000".into(), "0.500".into()));
    }

    #[test]
    fn bytes_are_binary() {
        let c = Column::fit(Unit::Bytes, [970_886.76, 2_281_000.0]);
        assert_eq!(
            (c.symbol(), c.cell(970_886.76), c.cell(2_281_000.0)),
            ("MiB", "0.93".into(), "2.18".into())
        );
        assert_eq!(quantity(Unit::Bytes, 65_504.0), "64.0 KiB");
        assert_eq!(quantity(Unit::Bytes, 12.0), "12.0 B");
        assert_eq!(quantity(Unit::Bytes, 3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB");
    }

    #[test]
    fn fixed_decimal_units_ignore_the_values() {
        let cores = Column::fit(Unit::Cores, [0.0559, 0.3265]);
        assert_eq!((cores.header("MAE"), cores.cell(0.0559)), ("MAE (cores)".into(), "0.056".into()));
        let r2 = Column::fit(Unit::Ratio, [0.4396, -0.122]);
        assert_eq!(
            (r2.header("R²"), r2.cell(0.4396), r2.cell(-0.122)),
            ("R²".into(), "0.440".into(), "−0.122".into())
        );
        assert_eq!(Column::fit(Unit::Percent, [72.39]).cell(72.39), "72.4");
        assert_eq!(Column::fit(Unit::Count, [477.0]).cell(477.0), "477");
        assert_eq!(Column::fit(Unit::Plain, [21_072.4]).cell(21_072.4), "21072");
    }

    #[test]
    fn no_exponents_and_no_signed_zero() {
        for (unit, v) in
            [(Unit::Nanos, 1.322e6), (Unit::Nanos, 1e15), (Unit::Bytes, 1e13), (Unit::Plain, 1e12)]
        {
            let text = Column::fit(unit, [v]).cell(v);
            assert!(!text.contains('e') && !text.contains('E'), "{v} as {text}");
        }
        let ms = Column::millis(3);
        assert_eq!(ms.cell(-100.0), "0.000");
        assert_eq!(ms.signed(-100.0), "0.000");
        assert_eq!(ms.signed(1_056_000.0), "+1.056");
        assert_eq!(ms.signed_quantity(-15e6), "−15.000 ms");
        assert_eq!(ms.cell_opt(None), "–");
        assert_eq!(ms.cell(f64::NAN), "–");
        assert_eq!(Column::fit(Unit::Nanos, [0.0, 0.0]).cell(0.0), "0");
    }

    #[test]
    fn column_units_come_from_the_documented_names() {
        assert_eq!(Unit::from_name("ns"), Unit::Nanos);
        assert_eq!(Unit::from_name("bytes"), Unit::Bytes);
        assert_eq!(Unit::from_name("cores"), Unit::Cores);
        assert_eq!(Unit::from_name("count"), Unit::Count);
        assert_eq!(Unit::from_name(""), Unit::Plain);
    }

    #[test]
    fn axis_ticks_are_short() {
        assert_eq!(axis_tick(30.000000000000004), "30");
        assert_eq!(axis_tick(0.30000000000000004), "0.3");
        assert_eq!(axis_tick(2.5e7), "25000000");
        assert_eq!(axis_tick(-0.0), "0");
        assert_eq!(axis_tick(-2.5), "−2.5");
        assert_eq!((count_tick(2.0), count_tick(1.5)), ("2".into(), String::new()));
        assert_eq!(
            [log_tick(10.0), log_tick(0.2), log_tick(500.0), log_tick(30.0)],
            ["10", "0.2", "500", ""]
        );
    }

    #[test]
    fn log_axes_start_just_below_a_power_of_ten() {
        for (min, power) in [(0.0048, 0.001), (0.7, 0.1), (2.5, 1.0), (37.0, 10.0), (1000.0, 1000.0)] {
            let start = log_axis_start(min);
            assert!(start < power && start > power * 0.99, "{min}: {start}");
            // The first power of ten at or above the start, as plotters finds it.
            let first = 10f64.powf((start.ln() / 10f64.ln()).ceil());
            assert!((first / power - 1.0).abs() < 1e-9, "{min}: first tick {first}");
        }
    }

    #[test]
    fn heavy_tails_and_wide_spans_get_a_log_axis() {
        // bfs runtimes: 0.9 ms to 219 ms.
        assert!(wants_log_axis(&[0.9e6, 5e6, 17.9e6, 20e6, 219e6]));
        // A long tail over a narrow bulk: median 3 ms, max 31 ms.
        assert!(wants_log_axis(&[2.8e6, 2.9e6, 3.0e6, 3.1e6, 31e6]));
        // simul: 100 ms to 200 ms.
        assert!(!wants_log_axis(&[100e6, 150e6, 200e6]));
        // Zeros and negatives (residuals) cannot go on a log axis.
        assert!(!wants_log_axis(&[-5.0, 0.0, 1.0, 1000.0]));
        assert!(!wants_log_axis(&[1.0]));
    }
}
