//! The time value of RFC 868, shared by TCP and UDP `time`: seconds as a big-endian `u32`,
//! modulo 2^32.

use std::time::SystemTime;

/// The epoch of the 4-byte time value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epoch {
    /// Seconds since 1970-01-01 UTC (the Python tutorial's server).
    Unix,
    /// Seconds since 1900-01-01 UTC (RFC 868, what `rdate` expects).
    Rfc868,
}

impl Epoch {
    /// Parses `unix` or `1900`.
    pub fn parse(s: &str) -> Option<Epoch> {
        match s {
            "unix" | "1970" => Some(Epoch::Unix),
            "1900" | "rfc868" => Some(Epoch::Rfc868),
            _ => None,
        }
    }
}

/// Seconds from 1900-01-01 to 1970-01-01.
pub const SECONDS_1900_TO_1970: u64 = 2_208_988_800;

/// The 32-bit time at `now` counted from `epoch`, wrapping modulo 2^32. A clock set before
/// 1970 reads as 1970.
pub fn time_value(now: SystemTime, epoch: Epoch) -> u32 {
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = match epoch {
        Epoch::Unix => unix,
        Epoch::Rfc868 => unix.wrapping_add(SECONDS_1900_TO_1970),
    };
    // Truncation is the protocol: the value is the low 32 bits.
    secs as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn unix_epoch_counts_from_1970() {
        assert_eq!(time_value(at(0), Epoch::Unix), 0);
        assert_eq!(time_value(at(1_700_000_000), Epoch::Unix), 1_700_000_000);
    }

    #[test]
    fn rfc868_epoch_adds_seventy_years_and_wraps() {
        assert_eq!(time_value(at(0), Epoch::Rfc868), 2_208_988_800);
        // 2036-02-07 06:28:16 UTC is where the 1900-based value wraps to 0.
        let wrap = (1u64 << 32) - SECONDS_1900_TO_1970;
        assert_eq!(time_value(at(wrap), Epoch::Rfc868), 0);
        assert_eq!(time_value(at(wrap + 5), Epoch::Rfc868), 5);
    }

    #[test]
    fn unix_value_wraps_in_2106() {
        assert_eq!(time_value(at((1u64 << 32) + 7), Epoch::Unix), 7);
    }

    #[test]
    fn a_clock_before_1970_reads_as_1970() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(time_value(before, Epoch::Unix), 0);
    }
}
