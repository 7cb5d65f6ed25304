//! Broken annotation and candidate CSVs (the CSV rows of `docs/reliability.md`): each one is read
//! from a real file and must give exactly the error below (`{path}` is the file), never a panic
//! and never a silently dropped row.

use std::path::Path;

use speck_eval::{read_annotations, read_candidates, read_excluded, read_series, EvalError};

#[track_caller]
fn expect<T: std::fmt::Debug>(r: Result<T, EvalError>, path: &Path, expected: &str) -> EvalError {
    let e = r.expect_err(expected);
    assert_eq!(
        e.to_string(),
        expected.replace("{path}", &path.display().to_string()),
        "{e:?}"
    );
    e
}

fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

#[test]
fn missing_columns_are_named_with_the_header_found() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = file(
        dir.path(),
        "cands.csv",
        b"seriesuid,coordX,coordY,coordZ\n1.2.3,1,2,3\n",
    );
    let e = expect(
        read_candidates(&p),
        &p,
        "{path}: line 1: missing column `probability` (header has: seriesuid,coordX,coordY,coordZ)",
    );
    assert!(matches!(e, EvalError::MissingColumn { .. }));
    let p = file(
        dir.path(),
        "annots.csv",
        b"seriesuid,coordX,coordY,coordZ,diameter\n1.2.3,1,2,3,4\n",
    );
    expect(
        read_annotations(&p),
        &p,
        "{path}: line 1: missing column `diameter_mm` (header has: \
         seriesuid,coordX,coordY,coordZ,diameter)",
    );
    // Column names are case-sensitive, as in the LUNA16 files.
    let p = file(
        dir.path(),
        "excluded.csv",
        b"SeriesUID,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,3,-1\n",
    );
    expect(
        read_excluded(&p),
        &p,
        "{path}: line 1: missing column `seriesuid` (header has: \
         SeriesUID,coordX,coordY,coordZ,diameter_mm)",
    );
}

#[test]
fn non_numeric_and_non_finite_values_name_line_column_and_value() {
    let dir = tempfile::tempdir().expect("tmp");
    let head = "seriesuid,coordX,coordY,coordZ,probability\n1.2.3,1,2,3,0.5\n";
    for (row, expected) in [
        (
            "1.2.3,1,abc,3,0.5",
            "{path}: line 3, column `coordY`: invalid value \"abc\": not a number",
        ),
        (
            "1.2.3,1,2,3,NaN",
            "{path}: line 3, column `probability`: invalid value \"NaN\": not a finite number",
        ),
        (
            "1.2.3,inf,2,3,0.5",
            "{path}: line 3, column `coordX`: invalid value \"inf\": not a finite number",
        ),
        (
            "1.2.3,1,2,,0.5",
            "{path}: line 3, column `coordZ`: invalid value \"\": empty",
        ),
        (
            ",1,2,3,0.5",
            "{path}: line 3, column `seriesuid`: invalid value \"\": empty",
        ),
        (
            "1.2.3,1e999,2,3,0.5",
            "{path}: line 3, column `coordX`: invalid value \"1e999\": not a finite number",
        ),
    ] {
        let p = file(dir.path(), "c.csv", format!("{head}{row}\n").as_bytes());
        let e = expect(read_candidates(&p), &p, expected);
        assert!(matches!(e, EvalError::InvalidValue { .. }));
    }
    let p = file(
        dir.path(),
        "a.csv",
        b"seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox\n1.2,0,0,0,4,-2\n",
    );
    expect(
        read_annotations(&p),
        &p,
        "{path}: line 2, column `diameter_vox`: invalid value \"-2\": negative diameter",
    );
}

#[test]
fn malformed_csv_structure_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().expect("tmp");
    for (text, expected) in [
        (
            "seriesuid,coordX,coordY,coordZ,probability\n1.2.3,1,2,3\n",
            "{path}: line 2: 4 fields where the header (line 1) has 5",
        ),
        (
            "seriesuid,coordX,coordY,coordZ,probability\n1.2.3,1,2,3,0.5\n\"1.2.4,1,2,3,0.5\n",
            "{path}: line 3: unterminated quoted field",
        ),
        (
            "seriesuid,coordX,coordY,coordZ,probability\n\"1.2\"x,1,2,3,0.5\n",
            "{path}: line 2: unexpected 'x' after a closing quote",
        ),
    ] {
        let p = file(dir.path(), "c.csv", text.as_bytes());
        expect(read_candidates(&p), &p, expected);
    }
}

#[test]
fn empty_and_binary_files_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = file(dir.path(), "empty.csv", b"");
    let e = expect(
        read_candidates(&p),
        &p,
        "{path}: empty file (expected a header line with \
         seriesuid,coordX,coordY,coordZ,probability)",
    );
    assert!(matches!(e, EvalError::EmptyFile { .. }));
    // Only blank lines: no header either.
    let p = file(dir.path(), "blank.csv", b"\n\n  \r\n");
    expect(
        read_candidates(&p),
        &p,
        "{path}: empty file (expected a header line with \
         seriesuid,coordX,coordY,coordZ,probability)",
    );
    let p = file(
        dir.path(),
        "binary.csv",
        &[0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe],
    );
    let e = expect(
        read_annotations(&p),
        &p,
        "{path}: stream did not contain valid UTF-8",
    );
    assert!(matches!(e, EvalError::Io { .. }));
    let p = dir.path().join("absent.csv");
    expect(
        read_series(&p),
        &p,
        "{path}: No such file or directory (os error 2)",
    );
}

#[test]
fn reader_and_n_readers_together_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = file(
        dir.path(),
        "a.csv",
        b"seriesuid,coordX,coordY,coordZ,diameter_mm,reader,n_readers\n1.2,0,0,0,4,r1,1\n",
    );
    expect(
        read_annotations(&p),
        &p,
        "{path}: line 1: both `reader` and `n_readers` columns: give one row per reader mark \
         (reader) or one row per nodule (n_readers), not both",
    );
}
