//! Per-profile limits (`max_per_profile`, `max_per_window`) checked while
//! sets are joined. Each set keeps its members of limited types as a linked
//! list threaded through one array, so joining two sets is O(1) and checking
//! a join reads only the limited members of the two sets.

use super::graph::{Graph, NO_FIRST, NONE};

const DAY_US: i64 = 86_400_000_000;

pub struct Held {
    head: Vec<u32>,
    tail: Vec<u32>,
    next: Vec<u32>,
    /// Scratch: `(type, first seen, id)` of both sides of a check.
    a: Vec<(u16, i64, u32)>,
    b: Vec<(u16, i64, u32)>,
}

impl Held {
    /// Every live identifier of a limited type starts as its own list.
    pub fn new(g: &Graph) -> Self {
        let limited: Vec<bool> = g
            .type_rules
            .iter()
            .map(|r| r.max_per_profile.is_some() || r.window.is_some())
            .collect();
        let n = g.len();
        let mut head = vec![NONE; n];
        for (id, h) in head.iter_mut().enumerate() {
            if limited[g.id_type[id] as usize] && g.is_live(id as u32) {
                *h = id as u32;
            }
        }
        Self {
            tail: head.clone(),
            head,
            next: vec![NONE; n],
            a: Vec::new(),
            b: Vec::new(),
        }
    }

    /// Moves the list of root `from` onto the end of the list of root `to`.
    pub fn join(&mut self, to: u32, from: u32) {
        let (to, from) = (to as usize, from as usize);
        if self.head[from] == NONE {
            return;
        }
        if self.head[to] == NONE {
            self.head[to] = self.head[from];
        } else {
            self.next[self.tail[to] as usize] = self.head[from];
        }
        self.tail[to] = self.tail[from];
        self.head[from] = NONE;
        self.tail[from] = NONE;
    }

    fn collect(&self, g: &Graph, root: u32, out: &mut Vec<(u16, i64, u32)>) {
        out.clear();
        let mut m = self.head[root as usize];
        while m != NONE {
            out.push((g.id_type[m as usize], g.first_ts[m as usize], m));
            m = self.next[m as usize];
        }
        out.sort_unstable();
    }

    /// Would joining the sets of roots `ra` and `rb` break a limit?
    /// Returns the rule and a reason.
    pub fn violation(&mut self, g: &Graph, ra: u32, rb: u32) -> Option<(&'static str, String)> {
        if self.head[ra as usize] == NONE || self.head[rb as usize] == NONE {
            return None;
        }
        let (mut a, mut b) = (std::mem::take(&mut self.a), std::mem::take(&mut self.b));
        self.collect(g, ra, &mut a);
        self.collect(g, rb, &mut b);
        let found = first_violation(g, &a, &b);
        (self.a, self.b) = (a, b);
        found
    }
}

/// `a` and `b` sorted by type, then first seen.
fn first_violation(
    g: &Graph,
    a: &[(u16, i64, u32)],
    b: &[(u16, i64, u32)],
) -> Option<(&'static str, String)> {
    let mut i = 0;
    while i < a.len() {
        let t = a[i].0;
        let in_a = run_of(a, i, t);
        i += in_a.len();
        let start = b.partition_point(|m| m.0 < t);
        let in_b = run_of(b, start, t);
        if in_b.is_empty() {
            continue;
        }
        let rule = g.type_rules[t as usize];
        let name = &g.type_names[t as usize];
        let total = in_a.len() + in_b.len();
        if let Some(max) = rule.max_per_profile
            && total > max
        {
            return Some(if max == 1 {
                (
                    "one_exclusive_per_profile",
                    format!(
                        "link would merge {name} '{}' with {name} '{}'",
                        g.value(in_a[0].2),
                        g.value(in_b[0].2)
                    ),
                )
            } else {
                (
                    "max_per_profile",
                    format!(
                        "link would give the profile {total} {name} values (max_per_profile {max})"
                    ),
                )
            });
        }
        if let Some((max, days)) = rule.window {
            let mut times: Vec<i64> = in_a
                .iter()
                .chain(in_b)
                .map(|m| m.1)
                .filter(|&t| t != NO_FIRST)
                .collect();
            times.sort_unstable();
            let span = days * DAY_US;
            // Two pointers: the most values first seen within any window.
            let mut lo = 0;
            let crowded = (0..times.len()).any(|hi| {
                while times[hi] - times[lo] >= span {
                    lo += 1;
                }
                hi - lo + 1 > max
            });
            if crowded {
                return Some((
                    "max_per_window",
                    format!(
                        "link would give the profile more than {max} {name} values first seen within {days} days"
                    ),
                ));
            }
        }
    }
    None
}

fn run_of(s: &[(u16, i64, u32)], start: usize, t: u16) -> &[(u16, i64, u32)] {
    let len = s[start..].iter().take_while(|m| m.0 == t).count();
    &s[start..start + len]
}
