//! Word lists for synthetic people.

pub const FIRST_NAMES: &[&str] = &[
    "Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe",
];

pub const LAST_NAMES: &[&str] = &[
    "Silva", "Smith", "Müller", "Garcia", "Kowalski", "Nguyen", "Rossi", "Dubois", "Okafor",
    "Tanaka", "Jensen", "Novak", "Khan", "Lopez", "Brown", "Costa", "Ivanova", "Meyer", "Santos",
    "Walsh",
];

pub const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "proton.me",
    "example.org",
];

/// (city, ISO country)
pub const CITIES: &[(&str, &str)] = &[
    ("Lisbon", "PT"),
    ("Berlin", "DE"),
    ("Madrid", "ES"),
    ("Paris", "FR"),
    ("London", "GB"),
    ("New York", "US"),
    ("San Francisco", "US"),
    ("Toronto", "CA"),
    ("Warsaw", "PL"),
    ("Milan", "IT"),
];

pub const PAGES: &[&str] = &[
    "/",
    "/shop",
    "/shop/shoes",
    "/shop/bags",
    "/sale",
    "/blog",
    "/account",
    "/cart",
    "/checkout",
];

pub const TRACK_EVENTS: &[&str] = &[
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Newsletter Opened",
];

/// Identifier placeholders that upstream tools really send.
pub const JUNK_IDS: &[&str] = &[
    "null",
    "undefined",
    "0",
    "anonymous",
    "00000000-0000-0000-0000-000000000000",
];
