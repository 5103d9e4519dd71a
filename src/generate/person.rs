//! One synthetic person (or household member) and everything upstream
//! systems record about them, with the traps real CDPs meet: several cookies,
//! logins and alias calls that link them, app devices, spellings of emails
//! and phones, junk ids, orders seen twice (order system and events),
//! duplicate CRM records, and family devices shared by two people.
//!
//! Each person draws from their own RNG (seed × index), so any person can be
//! generated alone and the output does not depend on batch boundaries.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::names::*;
use crate::udf::{normalize_email, normalize_phone};

pub struct EventRow {
    pub message_id: String,
    pub kind: &'static str,
    pub event: Option<String>,
    pub timestamp: i64,
    pub anonymous_id: Option<String>,
    pub user_id: Option<String>,
    pub previous_id: Option<String>,
    pub context: String,
    pub traits: Option<String>,
    pub properties: Option<String>,
}

pub struct OrderRow {
    pub order_id: String,
    pub email: String,
    pub amount: f64,
    pub currency: &'static str,
    pub ordered_at: i64,
}

pub struct ContactRow {
    pub contact_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub birthday: i32,
    pub city: &'static str,
    pub country: &'static str,
    pub consent_email: bool,
    pub updated_at: i64,
}

/// What the generator knows to be true about one person.
pub struct Truth {
    pub person_id: String,
    /// Normalised (type, value) that evidence links to this person.
    pub identifiers: Vec<(&'static str, String)>,
    pub order_count: u32,
    pub total_revenue: f64,
}

#[derive(Default)]
pub struct PersonData {
    pub events: Vec<EventRow>,
    pub orders: Vec<OrderRow>,
    pub contacts: Vec<ContactRow>,
    pub truth: Vec<Truth>,
}

const DAY_US: i64 = 86_400_000_000;
/// Every this many people, two neighbours form a household sharing an iPad.
pub const HOUSEHOLD_EVERY: u64 = 20;

pub struct Generator {
    pub seed: u64,
    /// The people generated are numbered `first_person..end`; each
    /// person's identifiers derive from their number, so two batches of
    /// different numbers are different people.
    pub first_person: u64,
    pub end: u64,
    /// End of the data window (µs since epoch); it spans the year before.
    pub as_of: i64,
}

impl Generator {
    fn rng(&self, i: u64, salt: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(
            self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D)
                ^ salt,
        )
    }

    fn uuid(rng: &mut ChaCha8Rng) -> String {
        let a: u128 = rng.random();
        let s = format!("{a:032x}");
        format!(
            "{}-{}-4{}-a{}-{}",
            &s[0..8],
            &s[8..12],
            &s[13..16],
            &s[17..20],
            &s[20..32]
        )
    }

    fn time(&self, rng: &mut ChaCha8Rng) -> i64 {
        self.as_of - rng.random_range(0..365 * DAY_US)
    }

    /// The shared device of household `h`: (device_id, its cookie).
    fn household_device(&self, h: u64) -> (String, String) {
        let mut rng = self.rng(h, 0xFA11);
        (
            format!("dev-{}", Self::uuid(&mut rng)),
            Self::uuid(&mut rng),
        )
    }

    /// Person `i`: whether they are a household member, and which household.
    fn household_of(&self, i: u64) -> Option<u64> {
        let h = i / HOUSEHOLD_EVERY;
        let first = h * HOUSEHOLD_EVERY;
        (i - first < 2 && first >= self.first_person && first + 1 < self.end).then_some(h)
    }

    pub fn person(&self, i: u64) -> PersonData {
        let mut rng = self.rng(i, 1);
        let mut out = PersonData::default();
        let household = self.household_of(i);
        let registered = household.is_some() || rng.random_bool(0.75);
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
        let (city, country) = CITIES[rng.random_range(0..CITIES.len())];
        let person_id = format!("person_{i:08}");
        let mut ids: Vec<(&'static str, String)> = Vec::new();

        let user_id = registered.then(|| {
            format!(
                "usr_{:010x}",
                (i.wrapping_mul(0x5DEE_CE66D) ^ self.seed) & 0xff_ffff_ffff | (i << 40)
            )
        });
        let has_email = if registered {
            rng.random_bool(0.92)
        } else {
            rng.random_bool(0.35)
        };
        let email = has_email.then(|| {
            let domain = EMAIL_DOMAINS[rng.random_range(0..EMAIL_DOMAINS.len())];
            let local = format!("{}.{}{}", ascii(first), ascii(last), i);
            format!("{local}@{domain}").to_lowercase()
        });
        let phone = (registered && rng.random_bool(0.5)).then(|| {
            let area = [415, 212, 646, 310, 512][rng.random_range(0..5)];
            format!("+1{area}{:07}", (i * 7_919) % 10_000_000)
        });
        if let Some(u) = &user_id {
            ids.push(("user_id", u.clone()));
        }
        // Email and phone join the truth only if some row carries them.
        let email_seen = std::cell::Cell::new(false);
        let phone_seen = std::cell::Cell::new(false);
        let spell_seen_email = |e: &str, rng: &mut ChaCha8Rng| {
            email_seen.set(true);
            spell_email(e, rng)
        };

        let mut seq = 0u32;
        let mut next_id = |prefix: &str| {
            seq += 1;
            format!("{prefix}_{i}_{seq}")
        };
        let ua = [
            "Mozilla/5.0 (Macintosh)",
            "Mozilla/5.0 (iPhone)",
            "Mozilla/5.0 (Windows NT 10.0)",
        ][rng.random_range(0..3)];
        let base_context = |device: Option<&str>, page: &str| {
            let mut c = json!({"ip": format!("10.{}.{}.{}", i % 200, (i / 200) % 250, i % 97), "userAgent": ua, "locale": "en-US", "page": {"path": page}});
            if let Some(d) = device {
                c["device"] = json!({"id": d, "type": "ios"});
            }
            c.to_string()
        };
        // The first login carries every trait, so all of a person's records
        // are linkable; later ones carry the phone only sometimes.
        let email_traits = |rng: &mut ChaCha8Rng, first_login: bool| -> Option<String> {
            let mut t = json!({"firstName": first, "lastName": last});
            if let Some(e) = &email {
                t["email"] = json!(spell_seen_email(e, rng));
            }
            if let Some(p) = &phone
                && (first_login || rng.random_bool(0.6))
            {
                t["phone"] = json!(spell_phone(p, rng));
                phone_seen.set(true);
            }
            Some(t.to_string())
        };

        // Web cookies: registered people log in (identify or alias) on each.
        let cookies = if registered {
            rng.random_range(1..=4)
        } else {
            1
        };
        for cookie_index in 0..cookies {
            let cookie = Self::uuid(&mut rng);
            let linkable = registered || email.is_some();
            if linkable {
                ids.push(("anonymous_id", cookie.clone()));
            }
            let sessions = rng.random_range(1..=3);
            for s in 0..sessions {
                let t0 = self.time(&mut rng);
                let pages = rng.random_range(1..=4);
                if rng.random_bool(0.3) {
                    let event = TRACK_EVENTS[rng.random_range(0..TRACK_EVENTS.len())];
                    out.events.push(EventRow {
                        message_id: next_id("m"),
                        kind: "track",
                        event: Some(event.to_owned()),
                        timestamp: t0 + 10_000_000,
                        anonymous_id: Some(cookie.clone()),
                        user_id: None,
                        previous_id: None,
                        context: base_context(None, "/shop"),
                        traits: None,
                        properties: Some(
                            json!({"product_id": format!("sku_{}", rng.random_range(1..500))})
                                .to_string(),
                        ),
                    });
                }
                for p in 0..pages {
                    let page = PAGES[rng.random_range(0..PAGES.len())];
                    let junk = rng.random_bool(0.03);
                    out.events.push(EventRow {
                        message_id: next_id("m"),
                        kind: "page",
                        event: None,
                        timestamp: t0 + p * 30_000_000,
                        anonymous_id: Some(if junk {
                            JUNK_IDS[rng.random_range(0..JUNK_IDS.len())].to_owned()
                        } else {
                            cookie.clone()
                        }),
                        user_id: (junk && rng.random_bool(0.5)).then(|| "null".to_owned()),
                        previous_id: None,
                        context: base_context(None, page),
                        traits: None,
                        properties: Some(json!({"path": page, "title": page}).to_string()),
                    });
                }
                if s == 0 && registered {
                    let alias = cookie_index > 0 && rng.random_bool(0.2);
                    out.events.push(EventRow {
                        message_id: next_id("m"),
                        kind: if alias { "alias" } else { "identify" },
                        event: None,
                        timestamp: t0 + pages * 30_000_000,
                        anonymous_id: (!alias).then(|| cookie.clone()),
                        user_id: user_id.clone(),
                        previous_id: alias.then(|| cookie.clone()),
                        context: base_context(None, "/login"),
                        traits: if alias {
                            None
                        } else {
                            email_traits(&mut rng, cookie_index == 0)
                        },
                        properties: None,
                    });
                } else if s == 0 && email.is_some() {
                    // A newsletter sign-up: the cookie meets the email.
                    let e = email.as_deref().map(|e| spell_seen_email(e, &mut rng));
                    out.events.push(EventRow {
                        message_id: next_id("m"),
                        kind: "identify",
                        event: None,
                        timestamp: t0 + pages * 30_000_000,
                        anonymous_id: Some(cookie.clone()),
                        user_id: None,
                        previous_id: None,
                        context: base_context(None, "/newsletter"),
                        traits: Some(json!({"email": e}).to_string()),
                        properties: None,
                    });
                }
            }
        }

        // App devices.
        if registered && rng.random_bool(0.3) {
            let device = format!("dev-{}", Self::uuid(&mut rng));
            let app_cookie = Self::uuid(&mut rng);
            ids.push(("device_id", device.clone()));
            ids.push(("anonymous_id", app_cookie.clone()));
            let t0 = self.time(&mut rng);
            for k in 0..rng.random_range(2..6) {
                out.events.push(EventRow {
                    message_id: next_id("m"),
                    kind: if k == 0 { "identify" } else { "screen" },
                    event: None,
                    timestamp: t0 + k * 60_000_000,
                    anonymous_id: Some(app_cookie.clone()),
                    user_id: (k == 0 || rng.random_bool(0.5))
                        .then(|| user_id.clone())
                        .flatten(),
                    previous_id: None,
                    context: base_context(Some(&device), "app"),
                    traits: if k == 0 {
                        email_traits(&mut rng, false)
                    } else {
                        None
                    },
                    properties: None,
                });
            }
        }

        // The family iPad: both household members log in on it.
        if let Some(h) = household {
            let (device, cookie) = self.household_device(h);
            let t0 = self.time(&mut rng);
            for k in 0..3 {
                out.events.push(EventRow {
                    message_id: next_id("m"),
                    kind: if k == 0 { "identify" } else { "screen" },
                    event: None,
                    timestamp: t0 + k * 60_000_000,
                    anonymous_id: Some(cookie.clone()),
                    user_id: (k == 0).then(|| user_id.clone()).flatten(),
                    previous_id: None,
                    context: base_context(Some(&device), "app"),
                    traits: None,
                    properties: None,
                });
            }
        }

        // Orders: from the order system, as events, or both.
        let mut order_count = 0;
        let mut revenue = 0.0;
        if (registered && rng.random_bool(0.6)) || (email.is_some() && rng.random_bool(0.2)) {
            for k in 0..rng.random_range(1..=8) {
                let order_id = format!("ord_{i}_{k}");
                let amount = (rng.random_range(500..50_000) as f64) / 100.0;
                let at = self.time(&mut rng);
                let mut in_system = email.is_some() && rng.random_bool(0.85);
                let mut as_event = registered && rng.random_bool(0.7);
                if !in_system && !as_event {
                    if email.is_some() {
                        in_system = true;
                    } else {
                        as_event = true;
                    }
                }
                if in_system && let Some(e) = &email {
                    let copies = if rng.random_bool(0.03) { 2 } else { 1 };
                    for _ in 0..copies {
                        out.orders.push(OrderRow {
                            order_id: order_id.clone(),
                            email: spell_seen_email(e, &mut rng),
                            amount,
                            currency: "USD",
                            ordered_at: at,
                        });
                    }
                }
                if as_event {
                    out.events.push(EventRow {
                        message_id: next_id("m"),
                        kind: "track",
                        event: Some("Order Completed".to_owned()),
                        timestamp: at,
                        anonymous_id: None,
                        user_id: user_id.clone(),
                        previous_id: None,
                        context: base_context(None, "/checkout"),
                        traits: None,
                        properties: Some(
                            json!({"order_id": order_id, "revenue": amount, "currency": "USD"})
                                .to_string(),
                        ),
                    });
                }
                order_count += 1;
                revenue += amount;
            }
        }

        // CRM contacts (some people twice).
        if (email.is_some() || phone.is_some()) && rng.random_bool(0.6) {
            let copies = if rng.random_bool(0.05) { 2 } else { 1 };
            for c in 0..copies {
                let contact_id = if c == 0 {
                    format!("c_{i}")
                } else {
                    format!("c_{i}_dup")
                };
                ids.push(("crm_contact_id", contact_id.clone()));
                out.contacts.push(ContactRow {
                    contact_id,
                    email: email.as_deref().map(|e| spell_seen_email(e, &mut rng)),
                    // A CRM writes national numbers for its own country only.
                    phone: phone.as_deref().map(|p| {
                        phone_seen.set(true);
                        if matches!(country, "US" | "CA") {
                            spell_phone(p, &mut rng)
                        } else {
                            spell_phone_international(p, &mut rng)
                        }
                    }),
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    birthday: rng.random_range(-15_000..10_000),
                    city,
                    country,
                    consent_email: rng.random_bool(0.7),
                    updated_at: self.time(&mut rng),
                });
            }
        }

        // A few events are delivered twice (same message_id).
        if rng.random_bool(0.02)
            && let Some(e) = out.events.first()
        {
            let dup = EventRow {
                message_id: e.message_id.clone(),
                kind: e.kind,
                event: e.event.clone(),
                timestamp: e.timestamp,
                anonymous_id: e.anonymous_id.clone(),
                user_id: e.user_id.clone(),
                previous_id: e.previous_id.clone(),
                context: e.context.clone(),
                traits: e.traits.clone(),
                properties: e.properties.clone(),
            };
            out.events.push(dup);
        }

        if let Some(e) = &email
            && email_seen.get()
        {
            let mut n = String::new();
            normalize_email(e, &mut n);
            ids.push(("email", n));
        }
        if let Some(p) = &phone
            && phone_seen.get()
        {
            let mut n = String::new();
            normalize_phone(p, "US", &mut n);
            ids.push(("phone", n));
        }
        out.truth.push(Truth {
            person_id,
            identifiers: ids,
            order_count,
            total_revenue: revenue,
        });
        out
    }
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ü' => 'u',
            c => c,
        })
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// The many ways one address gets typed.
fn spell_email(e: &str, rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..6) {
        0 => e.to_owned(),
        1 => e.to_uppercase(),
        2 => format!("  {e} "),
        3 => {
            let (l, d) = e.split_once('@').unwrap_or((e, ""));
            format!("{}@{}", capitalize(l), d.to_uppercase())
        }
        4 => format!("mailto:{e}"),
        _ => {
            let (l, d) = e.split_once('@').unwrap_or((e, ""));
            format!("{l}+shop@{d}")
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `+1AAAXXXXXXX` spelled with its country code.
fn spell_phone_international(p: &str, rng: &mut ChaCha8Rng) -> String {
    let d = &p[2..];
    match rng.random_range(0..3) {
        0 => p.to_owned(),
        1 => format!("+1 {} {} {}", &d[0..3], &d[3..6], &d[6..]),
        _ => format!("001-{}-{}-{}", &d[0..3], &d[3..6], &d[6..]),
    }
}

/// `+1AAAXXXXXXX` spelled as people type it.
fn spell_phone(p: &str, rng: &mut ChaCha8Rng) -> String {
    let d = &p[2..];
    match rng.random_range(0..5) {
        0 => p.to_owned(),
        1 => format!("({}) {}-{}", &d[0..3], &d[3..6], &d[6..]),
        2 => format!("{}.{}.{}", &d[0..3], &d[3..6], &d[6..]),
        3 => format!("+1 {} {} {}", &d[0..3], &d[3..6], &d[6..]),
        _ => format!("1-{}-{}-{}", &d[0..3], &d[3..6], &d[6..]),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Generator;

    /// Every identifier and message id of people `first_person..end`.
    fn ids(first_person: u64, end: u64) -> HashSet<String> {
        let g = Generator {
            seed: 7,
            first_person,
            end,
            as_of: 1_780_000_000_000_000,
        };
        let mut out = HashSet::new();
        for i in first_person..end {
            let person = g.person(i);
            for t in &person.truth {
                out.extend(t.identifiers.iter().map(|(k, v)| format!("{k}:{v}")));
            }
            out.extend(
                person
                    .events
                    .iter()
                    .map(|e| format!("message:{}", e.message_id)),
            );
        }
        out
    }

    #[test]
    fn batches_numbered_apart_are_other_people() {
        let first = ids(0, 300);
        let later = ids(300, 600);
        assert!(first.len() > 1000 && later.len() > 1000);
        let shared: Vec<_> = first.intersection(&later).collect();
        assert!(shared.is_empty(), "shared: {shared:?}");
    }
}
