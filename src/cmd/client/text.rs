//! Text in and out of the clients: `--send` escapes, and UTC time as RFC 3339.

/// Decodes the escapes of `raw --send`: `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` (one byte).
pub(super) fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        let byte = match chars.next() {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('0') => 0,
            Some('\\') => b'\\',
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("\\x needs two hex digits, not {hex:?}"))?
            }
            Some(other) => return Err(format!("unknown escape \\{other} (use \\\\ for \\)")),
            None => return Err("a lone \\ at the end (use \\\\ for \\)".into()),
        };
        bytes.push(byte);
    }
    Ok(bytes)
}

/// Formats seconds since 1970-01-01 UTC as RFC 3339: `2026-11-21T05:49:47Z`.
pub(super) fn rfc3339_utc(unix_seconds: u64) -> String {
    let (days, secs) = (unix_seconds / 86_400, unix_seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
///
/// It counts in 400-year eras that start on 0000-03-01, so the leap day is the last day of
/// its year and months have a fixed pattern (153 days per 5 months from March).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097; // days per 400 years
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_decode_to_their_bytes() {
        assert_eq!(unescape(r"/\r\n").unwrap(), b"/\r\n");
        assert_eq!(
            unescape(r"a\tb\\c\0\x7f\xFFé").unwrap(),
            b"a\tb\\c\0\x7f\xff\xc3\xa9"
        );
        for bad in [r"\q", "end\\", r"\x4", r"\xzz"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn known_instants_format_as_rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_240_187), "2026-11-21T05:49:47Z");
        assert_eq!(rfc3339_utc(u64::from(u32::MAX)), "2106-02-07T06:28:15Z");
    }

    /// The inverse, `days_from_civil`, computed the plain way: whole years, then months.
    fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
        let leap =
            |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        let year_days: u64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
        let month_days: u64 = (1..month)
            .map(|m| match m {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            })
            .sum();
        year_days + month_days + day - 1
    }

    proptest! {
        #[test]
        fn civil_from_days_inverts_plain_day_counting(days in 0u64..60_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
