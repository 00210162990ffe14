//! Plot labels are drawn with a TrueType font read at run time (plotters'
//! `ab_glyph` backend: no fontconfig, no system font library). Every crate
//! that draws calls [`ensure`] first.
//!
//! This lives in one place because cargo unifies features: once any crate in
//! a build enables `ab_glyph`, every crate's plots need a registered font, or
//! drawing text fails with `FontUnavailable`.

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Environment variable naming a `.ttf` file for plot labels.
pub const FONT_ENV: &str = "HYPERFAKE_PLOT_FONT";

/// Where the font is looked for when [`FONT_ENV`] is unset: DejaVu Sans from
/// Debian's `fonts-dejavu-core` (and where other distributions put it).
pub const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// No usable font was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no font for plot labels: tried {tried} (install fonts-dejavu-core or set {FONT_ENV})")]
pub struct NoFont {
    pub tried: String,
}

/// Registers the font for the families plots use; idempotent and cheap after the first call.
pub fn ensure() -> Result<(), NoFont> {
    static FONT: OnceLock<Result<(), NoFont>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os(FONT_ENV) {
            Some(p) => vec![PathBuf::from(p)],
            None => FONT_PATHS.iter().map(PathBuf::from).collect(),
        };
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the whole process and wants `'static`.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                let families = ["sans-serif", "serif", "monospace"];
                if families
                    .iter()
                    .all(|f| plotters::style::register_font(f, FontStyle::Normal, bytes).is_ok())
                {
                    return Ok(());
                }
            }
        }
        Err(NoFont {
            tried: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        })
    })
    .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn registers_a_font_that_draws_text() {
        use plotters::prelude::*;
        super::ensure().expect("the test machine has DejaVu Sans");
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (200, 100)).into_drawing_area();
            root.draw(&Text::new("label", (10, 10), ("sans-serif", 12))).unwrap();
        }
        assert!(svg.contains("label"));
    }
}
