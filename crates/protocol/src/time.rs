//! Unix milliseconds as a calendar date and time (UTC), for what people read: the operator's
//! tables, exported histories.

/// A moment in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// The year.
    pub year: i64,
    /// 1 to 12.
    pub month: i64,
    /// 1 to 31.
    pub day: i64,
    /// 0 to 23.
    pub hour: i64,
    /// 0 to 59.
    pub minute: i64,
    /// 0 to 59.
    pub second: i64,
}

impl Civil {
    /// The moment `ms` milliseconds after 1970-01-01 00:00 UTC (Howard Hinnant's
    /// `civil_from_days`).
    pub fn from_unix_ms(ms: i64) -> Self {
        let secs = ms.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: rem / 3600, minute: rem % 3600 / 60, second: rem % 60 }
    }

    /// `2026-11-25 03:32`.
    pub fn minutes(&self) -> String {
        format!("{:04}-{:02}-{:02} {:02}:{:02}", self.year, self.month, self.day, self.hour, self.minute)
    }

    /// `2026-11-25 03:32:05`.
    pub fn seconds(&self) -> String {
        format!("{}:{:02}", self.minutes(), self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::Civil;

    #[test]
    fn dates_across_leap_years_and_centuries() {
        assert_eq!(Civil::from_unix_ms(0).seconds(), "1970-01-01 00:00:00");
        assert_eq!(Civil::from_unix_ms(1_764_041_525_000).seconds(), "2025-11-25 03:32:05");
        assert_eq!(Civil::from_unix_ms(951_782_400_000).seconds(), "2000-02-29 00:00:00");
        assert_eq!(Civil::from_unix_ms(4_107_542_399_999).seconds(), "2100-02-28 23:59:59");
        assert_eq!(Civil::from_unix_ms(-1).seconds(), "1969-12-31 23:59:59");
    }
}
