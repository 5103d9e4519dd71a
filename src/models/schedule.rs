//! A model's schedule (`{{ config(schedule='…') }}`): a cron expression
//! (`'0 * * * *'`, `'*/15 * * * *'`, `'@daily'`; five fields, UTC) or an
//! interval (`'every 15 minutes'`, `'every 2 hours'`). Intervals are
//! counted from the Unix epoch, so `every 15 minutes` is due at :00, :15,
//! :30 and :45 whenever the server started — a restart neither skips nor
//! repeats a run.

use chrono::{DateTime, Utc};
use croner::Cron;

use super::template::Period;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron { text: String, cron: Box<Cron> },
    Every(Period),
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Eq for Schedule {}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Some(rest) = trimmed.strip_prefix("every ") {
            return match Period::parse(rest) {
                Some(p) if p.micros > 0 => Ok(Self::Every(Period {
                    text: trimmed.to_owned(),
                    micros: p.micros,
                })),
                _ => Err(format!(
                    "schedule '{text}': not an interval such as 'every 15 minutes'"
                )),
            };
        }
        let cron = Cron::new(trimmed)
            .parse()
            .map_err(|e| format!("schedule '{text}': not a cron expression ({e})"))?;
        Ok(Self::Cron {
            text: trimmed.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// As written.
    pub fn text(&self) -> &str {
        match self {
            Self::Cron { text, .. } => text,
            Self::Every(p) => &p.text,
        }
    }

    /// The first due time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Every(p) => {
                let now = t.timestamp_micros();
                let next = (now.div_euclid(p.micros) + 1) * p.micros;
                DateTime::from_timestamp_micros(next).unwrap_or(t)
            }
            Self::Cron { cron, .. } => cron
                .find_next_occurrence(&t, false)
                .unwrap_or(t + chrono::Duration::days(366)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_and_cron_expressions() {
        let every = Schedule::parse("every 15 minutes").unwrap();
        assert_eq!(
            every.next_after(at("2026-11-23T10:07:00Z")),
            at("2026-11-23T10:15:00Z")
        );
        assert_eq!(
            every.next_after(at("2026-11-23T10:15:00Z")),
            at("2026-11-23T10:30:00Z")
        );
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-11-23T10:00:00Z")),
            at("2026-11-23T11:00:00Z")
        );
        let daily = Schedule::parse("@daily").unwrap();
        assert_eq!(
            daily.next_after(at("2026-11-23T10:00:00Z")),
            at("2026-11-24T00:00:00Z")
        );
        assert!(Schedule::parse("every blue moon").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
    }
}
