use rundb::fixtures::SynthRun;

#[test]
fn every_plot_is_a_valid_png_and_svg_linked_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    SynthRun::new("plots", 3_000).write(&db).unwrap();
    let out = dir.path().join("plots");
    let written = processing::plots::draw_db(&db, None, &out).unwrap();
    assert_eq!(written.len(), processing::plots::PLOTS.len() * 2 + 1);

    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for (stem, _) in processing::plots::PLOTS {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        assert!(png.len() > 5_000, "{stem}.png is only {} bytes: nothing drawn?", png.len());
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{stem}.svg is an SVG");
        assert!(svg.contains("<text"), "{stem}.svg has labels");
        assert!(index.contains(&format!("href=\"{stem}.svg\"")), "index links {stem}.svg");
        assert!(index.contains(&format!("src=\"{stem}.png\"")), "index shows {stem}.png");
    }
}
