//! A Drain-style template miner.
//!
//! Each line is masked ([`super::mask`]) and routed by its token count and its
//! first [`MinerConfig::depth`] tokens (a token with a variable routes as
//! `<*>`) to a bucket of templates, as in Drain's fixed-depth parse tree. The
//! most similar template of the bucket (share of positions with equal tokens,
//! Drain's `seqDist`; on a tie, the one whose differing tokens share a
//! punctuated prefix or suffix with the line, such as the `key=` of a
//! `key=value`) takes the line when the similarity reaches
//! [`MinerConfig::similarity_threshold`]; the positions that differ become
//! `<*>` (keeping a common punctuated prefix or suffix, so `uid=a` and `uid=b`
//! give `uid=<*>`). Otherwise the line starts a new template.
//!
//! A template's id is a hash of its text when created, so it is stable across
//! runs; with [`TemplateMiner::save`] and [`TemplateMiner::load`] the miner
//! carries on where it stopped and gives the same ids. Memory is bounded by
//! [`MinerConfig::max_templates`]: the least recently used template is evicted.
//!
//! A line that matches a template allocates nothing: its tokens go into a
//! buffer the miner reuses, the route key is hashed without being built, and
//! the template text in [`TemplateMatch`] is shared with the template (rebuilt
//! only when the template changes). The saved state is the same as before
//! these buffers (the derived parts are rebuilt on load).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::mask::{Masker, TokenBuf, WILDCARD, find_wildcard, has_wildcard, rfind_wildcard};
use crate::AnalyzerError;

/// Miner settings. One configuration serves every log source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerConfig {
    /// Leading tokens that route a line (Drain's depth minus 2).
    pub depth: usize,
    /// Minimum share of equal tokens for a line to join a template.
    pub similarity_threshold: f64,
    /// Distinct values a position must show before it becomes `<*>`: until
    /// then lines that differ there are kept as sibling templates (so
    /// `Link ok` / `Link error` stay two events, while `user root`, `user
    /// news`, `user test` merge into `user <*>`). 2 is plain Drain.
    pub min_variable_values: usize,
    /// Templates kept; beyond, the least recently used one is evicted.
    pub max_templates: usize,
    /// Tokenising limits.
    pub masker: Masker,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            depth: 1,
            similarity_threshold: 0.5,
            min_variable_values: 4,
            max_templates: 50_000,
            masker: Masker::default(),
        }
    }
}

/// What [`TemplateMiner::add`] decided for a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMatch {
    /// Stable id of the template (hash of its text when first created).
    pub id: u64,
    /// The template text after this line, `<*>` for variables (shared with
    /// the miner: no copy per line).
    pub template: Arc<str>,
    /// True when this line created the template.
    pub is_new: bool,
    /// True when this line generalised an existing template.
    pub changed: bool,
}

/// Counters of the miner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerStats {
    /// Lines added.
    pub lines: u64,
    /// Lines whose tokens beyond the cap were dropped.
    pub truncated_lines: u64,
    /// Templates evicted to stay under `max_templates`.
    pub evicted_templates: u64,
}

/// One template.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cluster {
    id: u64,
    tokens: Vec<String>,
    key: String,
    count: u64,
    last_used: u64,
    /// Ids of templates merged into this one (bounded).
    #[serde(default)]
    aliases: Vec<u64>,
    /// Sibling templates that differ from this one at a set of positions,
    /// waiting for enough distinct values to merge.
    #[serde(default)]
    pending: Vec<Pending>,
    /// `tokens` joined by spaces, rebuilt when they change.
    #[serde(skip)]
    text: Arc<str>,
    /// Whether each token holds a `<*>`.
    #[serde(skip)]
    wild: Vec<bool>,
    /// Key of this template's entry in the LRU index: `last_used` when the
    /// entry was written, which may be older (see [`Index::lru`]).
    #[serde(skip)]
    lru_key: u64,
}

impl Cluster {
    /// Rebuilds the text and wildcard flags from the tokens.
    fn refresh(&mut self) {
        self.text = self.tokens.join(" ").into();
        self.wild = self.tokens.iter().map(|t| has_wildcard(t)).collect();
    }

    /// True when the template's token `i` neither equals nor matches `c`.
    fn differs(&self, i: usize, c: &str) -> bool {
        let t = self.tokens[i].as_str();
        t != c && !(self.wild[i] && glob_match(t, c))
    }
}

/// Siblings of a template differing at the same positions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    positions: Vec<usize>,
    /// `(creation sequence number, values at positions)` per sibling.
    members: Vec<(u64, Vec<String>)>,
}

/// Aliases kept per template.
const MAX_ALIASES: usize = 64;
/// Pending sibling sets kept per template.
const MAX_PENDING: usize = 16;

/// The template miner; see the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateMiner {
    config: MinerConfig,
    /// Creation sequence number → template (iteration order = creation order).
    clusters: BTreeMap<u64, Cluster>,
    next_seq: u64,
    clock: u64,
    stats: MinerStats,
    #[serde(skip)]
    index: Index,
    /// Reused buffers of [`TemplateMiner::add`].
    #[serde(skip)]
    scratch: Scratch,
}

/// Buffers reused from line to line, so a line that matches a template
/// allocates nothing.
#[derive(Debug, Clone, Default)]
struct Scratch {
    tokens: TokenBuf,
    positions: Vec<usize>,
}

/// Hasher for keys that are already hashes (route keys, template ids).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Lookup structures derived from `clusters` (rebuilt on load).
#[derive(Debug, Clone, Default)]
struct Index {
    /// Hash of the route key → creation sequence numbers.
    buckets: IdMap<Vec<u64>>,
    /// Template id → creation sequence number.
    ids: IdMap<u64>,
    /// Last use → creation sequence number (least recently used first),
    /// one entry per template. A use only updates the template's
    /// `last_used`; the entry is moved when eviction finds it stale, so the
    /// first entry that is not stale is the least recently used template.
    lru: BTreeMap<u64, u64>,
}

/// FNV-1a, fed in pieces.
struct Fnv(u64);

impl Fnv {
    fn new(salt: u64) -> Self {
        Fnv(0xcbf2_9ce4_8422_2325 ^ salt)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn fnv1a(s: &str, salt: u64) -> u64 {
    let mut h = Fnv::new(salt);
    h.write(s.as_bytes());
    h.0
}

/// `fnv1a(&route_key(tokens, depth), 0)` without building the key.
fn route_hash(tokens: &TokenBuf, depth: usize) -> u64 {
    let mut h = Fnv::new(0);
    let mut digits = [0u8; 20];
    let mut n = tokens.len();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    h.write(&digits[at..]);
    for t in tokens.iter().take(depth) {
        h.write(&[0x1f]);
        if has_wildcard(t) {
            h.write(WILDCARD.as_bytes());
        } else {
            h.write(t.as_bytes());
        }
    }
    h.0
}

fn route_key(tokens: &[String], depth: usize) -> String {
    let mut key = tokens.len().to_string();
    for t in tokens.iter().take(depth) {
        key.push('\u{1f}');
        if t.contains(WILDCARD) {
            key.push_str(WILDCARD);
        } else {
            key.push_str(t);
        }
    }
    key
}

/// Drain's similarity: share of positions with equal tokens, the number
/// of wildcard positions of the template that match (tie-break), and
/// whether the template covers the line (no position [`Cluster::differs`]).
fn similarity(template: &Cluster, tokens: &TokenBuf) -> (f64, usize, bool) {
    if template.tokens.is_empty() {
        return (1.0, 0, true);
    }
    let mut same = 0usize;
    let mut params = 0usize;
    for ((t, wild), c) in template
        .tokens
        .iter()
        .zip(&template.wild)
        .zip(tokens.iter())
    {
        if t == c {
            same += 1;
        } else if *wild && glob_match(t, c) {
            params += 1;
        }
    }
    let n = template.tokens.len();
    (same as f64 / n as f64, params, same + params == n)
}

/// Positions where `template` differs from the line but keeps a common
/// punctuated prefix or suffix with it (`key=` of `key=value`).
fn affinity(template: &Cluster, tokens: &TokenBuf) -> usize {
    (0..tokens.len().min(template.tokens.len()))
        .filter(|&i| {
            let c = tokens.get(i);
            template.differs(i, c) && merge_token(&template.tokens[i], c) != WILDCARD
        })
        .count()
}

/// Generalises two tokens: keeps a common prefix ending and a common suffix
/// starting at punctuation, and puts `<*>` in between.
fn merge_token(a: &str, b: &str) -> String {
    if a == b {
        return a.to_string();
    }
    let punct = |c: char| !c.is_alphanumeric() && c != '*' && c != '<' && c != '>';
    let mut pre = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            break;
        }
        if punct(ca) {
            pre = i + ca.len_utf8();
        }
    }
    let mut suf = 0; // byte length of common suffix
    for ((i, ca), cb) in a.char_indices().rev().zip(b.chars().rev()) {
        if ca != cb || a.len() - i + pre > a.len().min(b.len()) {
            break;
        }
        if punct(ca) {
            suf = a.len() - i;
        }
    }
    if pre + suf > a.len().min(b.len()) {
        return WILDCARD.to_string();
    }
    format!("{}{WILDCARD}{}", &a[..pre], &a[a.len() - suf..])
}

/// True when the parts where `a` and `b` differ (inside their common
/// punctuated prefix and suffix) are both plain words such as `ok` / `error`
/// or `ee<*>` / `alt<*>`, the kind of difference that may be two events.
fn word_difference(a: &str, b: &str) -> bool {
    let merged = merge_token(a, b);
    let Some(at) = merged.find(WILDCARD) else {
        return false;
    };
    let (pre, suf) = (at, merged.len() - at - WILDCARD.len());
    let core = |s: &str| -> bool {
        if pre + suf > s.len() || !s.is_char_boundary(pre) || !s.is_char_boundary(s.len() - suf) {
            return false;
        }
        let c = s[pre..s.len() - suf].replace(WILDCARD, "0");
        c.chars().all(char::is_alphanumeric)
    };
    let non_empty = |s: &str| s.len() > pre + suf;
    core(a) && core(b) && (non_empty(a) || non_empty(b))
}

/// True when `a` and `b` are `key=value` pairs (or lists of them) with
/// different keys, such as `num=<*>,flags=<*>` and `topActivity=<*>`: the
/// keys are part of the message's format, so they may be two events.
fn key_difference(a: &str, b: &str) -> bool {
    let key = |s: &str| -> Option<String> {
        let (k, _) = s.split_once('=')?;
        let k = k.trim_start_matches(|c: char| !c.is_alphanumeric());
        (!k.is_empty()
            && !k.contains(WILDCARD)
            && k.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.'))
        .then(|| k.to_string())
    };
    matches!((key(a), key(b)), (Some(x), Some(y)) if x != y)
}

/// `str::find` for the short needles of templates, without its searcher's
/// set-up cost. A match of valid UTF-8 in valid UTF-8 is on char boundaries.
fn find_str(haystack: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
}

/// True when `token` matches `pattern`, where `<*>` stands for any text,
/// but a value ending a `key=<*>` is not empty (`rhost=` is another shape
/// than `rhost=<*>`).
fn glob_match(pattern: &str, token: &str) -> bool {
    let (Some(first_at), Some(last_at)) = (find_wildcard(pattern), rfind_wildcard(pattern)) else {
        return pattern == token;
    };
    let Some(mut rest) = token.strip_prefix(&pattern[..first_at]) else {
        return false;
    };
    let last = &pattern[last_at + WILDCARD.len()..];
    if last_at > first_at {
        for part in pattern[first_at + WILDCARD.len()..last_at].split(WILDCARD) {
            match find_str(rest, part) {
                Some(i) => rest = &rest[i + part.len()..],
                None => return false,
            }
        }
    }
    let key_value = last.is_empty() && pattern[..last_at].ends_with('=');
    rest.ends_with(last) && !(key_value && rest.is_empty())
}

/// Generalises `cluster`'s tokens to cover `other` (same length); true
/// when a token changed. The text is not refreshed.
fn generalise<'a>(cluster: &mut Cluster, other: impl Iterator<Item = &'a str>) -> bool {
    let mut changed = false;
    for (i, c) in other.enumerate().take(cluster.tokens.len()) {
        if cluster.differs(i, c) {
            let merged = merge_token(&cluster.tokens[i], c);
            if merged != cluster.tokens[i] {
                cluster.wild[i] = has_wildcard(&merged);
                cluster.tokens[i] = merged;
                changed = true;
            }
        }
    }
    changed
}

impl TemplateMiner {
    /// An empty miner.
    pub fn new(config: MinerConfig) -> Self {
        TemplateMiner {
            config,
            clusters: BTreeMap::new(),
            next_seq: 0,
            clock: 0,
            stats: MinerStats::default(),
            index: Index::default(),
            scratch: Scratch::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// Number of templates held.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// True when no template is held.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// The current text of template `id`, if held.
    pub fn template(&self, id: u64) -> Option<String> {
        self.template_text(id).map(|t| t.to_string())
    }

    /// The current text of template `id`, if held, without a copy.
    pub fn template_text(&self, id: u64) -> Option<Arc<str>> {
        let seq = self.index.ids.get(&id)?;
        self.clusters.get(seq).map(|c| c.text.clone())
    }

    /// `(id, template text, lines)` of every template, oldest first.
    pub fn templates(&self) -> Vec<(u64, String, u64)> {
        self.clusters
            .values()
            .map(|c| (c.id, c.text.to_string(), c.count))
            .collect()
    }

    /// Adds a line given as bytes (invalid UTF-8 is replaced).
    pub fn add_bytes(&mut self, content: &[u8]) -> TemplateMatch {
        self.add(&String::from_utf8_lossy(content))
    }

    /// Adds one line's content (the message, without its header).
    pub fn add(&mut self, content: &str) -> TemplateMatch {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.config
            .masker
            .tokenize_into(content, &mut scratch.tokens);
        let m = self.add_tokens(&scratch.tokens, &mut scratch.positions);
        self.scratch = scratch;
        m
    }

    fn add_tokens(&mut self, tokens: &TokenBuf, positions: &mut Vec<usize>) -> TemplateMatch {
        self.stats.lines += 1;
        if tokens.truncated() {
            self.stats.truncated_lines += 1;
        }
        self.clock += 1;
        let route = route_hash(tokens, self.config.depth);
        let owned = || tokens.iter().map(str::to_string).collect::<Vec<_>>();
        let Some((seq, covered)) = self.best_match(route, tokens) else {
            let tokens = owned();
            return self.create(route_key(&tokens, self.config.depth), tokens);
        };
        if covered {
            // Nothing to generalise (the common case).
            return self.join(seq, tokens, false, Vec::new());
        }
        let Some(cluster) = self.clusters.get(&seq) else {
            let tokens = owned();
            return self.create(route_key(&tokens, self.config.depth), tokens);
        };
        positions.clear();
        positions.extend((0..tokens.len()).filter(|&i| cluster.differs(i, tokens.get(i))));
        // Only word-for-word differences wait for more values; a difference
        // in a path, a list or a masked token makes a variable at once.
        let words_differ = positions.iter().any(|&i| {
            word_difference(&cluster.tokens[i], tokens.get(i))
                || key_difference(&cluster.tokens[i], tokens.get(i))
        });
        if !words_differ || self.config.min_variable_values <= 2 {
            return self.join(seq, tokens, true, Vec::new());
        }
        let positions = positions.clone();
        let values: Vec<String> = positions
            .iter()
            .map(|&i| tokens.get(i).to_string())
            .collect();
        let own: Vec<String> = positions
            .iter()
            .map(|&i| cluster.tokens[i].clone())
            .collect();
        let mut distinct: Vec<&Vec<String>> = vec![&own, &values];
        let mut members = Vec::new();
        if let Some(p) = cluster.pending.iter().find(|p| p.positions == positions) {
            for (member, vals) in &p.members {
                if self.clusters.contains_key(member) {
                    members.push(*member);
                    if !distinct.contains(&vals) {
                        distinct.push(vals);
                    }
                }
            }
        }
        // One differing word in a long message is more likely a value
        // (`user cyrus`, `user news`, ...), unless the words look like
        // constants: upper case (`LOOKING`, `LEADING`) or very short (`x+`).
        let value_like = |v: &str| {
            let core: String = v.chars().filter(|c| c.is_alphabetic()).collect();
            core.chars().count() >= 3 && core.chars().any(char::is_lowercase)
        };
        let needed = if positions.len() == 1
            && tokens.len() >= 6
            && distinct.iter().all(|v| v.iter().all(|t| value_like(t)))
        {
            self.config.min_variable_values.saturating_sub(1).max(2)
        } else {
            self.config.min_variable_values
        };
        if distinct.len() >= needed {
            if let Some(cluster) = self.clusters.get_mut(&seq) {
                cluster.pending.retain(|p| p.positions != positions);
            }
            return self.join(seq, tokens, true, members);
        }
        let tokens = owned();
        let created = self.create(route_key(&tokens, self.config.depth), tokens);
        let new_seq = self.next_seq - 1;
        if let Some(cluster) = self.clusters.get_mut(&seq) {
            match cluster
                .pending
                .iter_mut()
                .find(|p| p.positions == positions)
            {
                Some(p) => p.members.push((new_seq, values)),
                None => {
                    if cluster.pending.len() >= MAX_PENDING {
                        cluster.pending.remove(0);
                    }
                    cluster.pending.push(Pending {
                        positions,
                        members: vec![(new_seq, values)],
                    });
                }
            }
        }
        created
    }

    /// Adds a line to template `seq`, absorbing the sibling templates
    /// `members`, and generalises the template (to cover the line too when
    /// `generalise_line`; false when it is known to cover it already).
    fn join(
        &mut self,
        seq: u64,
        tokens: &TokenBuf,
        generalise_line: bool,
        members: Vec<u64>,
    ) -> TemplateMatch {
        let mut absorbed = Vec::new();
        for member in members {
            if member == seq {
                continue;
            }
            if let Some(m) = self.clusters.get(&member).cloned() {
                self.remove(member);
                absorbed.push(m);
            }
        }
        let clock = self.clock;
        let Some(cluster) = self.clusters.get_mut(&seq) else {
            return self.create(String::new(), tokens.iter().map(str::to_string).collect());
        };
        let mut changed = generalise_line && generalise(cluster, tokens.iter());
        for m in &absorbed {
            changed |= generalise(cluster, m.tokens.iter().map(String::as_str));
        }
        if changed {
            cluster.refresh();
            self.absorb_covered_siblings(seq, &mut absorbed);
        }
        let Some(cluster) = self.clusters.get_mut(&seq) else {
            return self.create(String::new(), tokens.iter().map(str::to_string).collect());
        };
        let mut new_ids = Vec::new();
        for m in &absorbed {
            cluster.count += m.count;
            new_ids.push(m.id);
            new_ids.extend(&m.aliases);
        }
        cluster.aliases.extend(&new_ids);
        if cluster.aliases.len() > MAX_ALIASES {
            let drop = cluster.aliases.len() - MAX_ALIASES;
            for old in cluster.aliases.drain(..drop) {
                self.index.ids.remove(&old);
            }
        }
        for id in new_ids {
            if cluster.aliases.contains(&id) {
                self.index.ids.insert(id, seq);
            }
        }
        cluster.count += 1;
        cluster.last_used = clock;
        TemplateMatch {
            id: cluster.id,
            template: cluster.text.clone(),
            is_new: false,
            changed: changed || !absorbed.is_empty(),
        }
    }

    /// Removes the pending siblings of template `seq` that it now covers
    /// (it became a variable where they differed: they are the same event),
    /// adding them to `absorbed`.
    fn absorb_covered_siblings(&mut self, seq: u64, absorbed: &mut Vec<Cluster>) {
        let Some(cluster) = self.clusters.get(&seq) else {
            return;
        };
        let covered: Vec<u64> = cluster
            .pending
            .iter()
            .flat_map(|p| p.members.iter().map(|(member, _)| *member))
            .filter(|member| {
                *member != seq
                    && self.clusters.get(member).is_some_and(|m| {
                        m.tokens.len() == cluster.tokens.len()
                            && m.tokens
                                .iter()
                                .enumerate()
                                .all(|(i, t)| !cluster.differs(i, t))
                    })
            })
            .collect();
        if covered.is_empty() {
            return;
        }
        for member in &covered {
            if let Some(m) = self.clusters.get(member).cloned() {
                self.remove(*member);
                absorbed.push(m);
            }
        }
        if let Some(cluster) = self.clusters.get_mut(&seq) {
            for p in &mut cluster.pending {
                p.members.retain(|(member, _)| !covered.contains(member));
            }
            cluster.pending.retain(|p| !p.members.is_empty());
        }
    }

    /// The most similar template of the line's bucket, if similar enough,
    /// and whether it covers the line (every token equal or matched).
    fn best_match(&self, route: u64, tokens: &TokenBuf) -> Option<(u64, bool)> {
        let bucket = self.index.buckets.get(&route)?;
        let mut best: Option<(f64, usize, u64, bool)> = None;
        // Affinity of the best so far, computed on the first tie.
        let mut best_affinity: Option<usize> = None;
        for &seq in bucket {
            let Some(cluster) = self.clusters.get(&seq) else {
                continue;
            };
            // Only a hash collision of two route keys mixes lengths.
            if cluster.tokens.len() != tokens.len() {
                continue;
            }
            let (sim, params, covered) = similarity(cluster, tokens);
            let better = match best {
                None => true,
                Some((bs, bp, bseq, _)) if sim == bs && params == bp => {
                    // A tie: prefer the template whose differing tokens
                    // share a punctuated prefix or suffix with the line
                    // (`key=` of a `key=value`), the same shape.
                    let held = *best_affinity.get_or_insert_with(|| {
                        self.clusters.get(&bseq).map_or(0, |b| affinity(b, tokens))
                    });
                    let own = affinity(cluster, tokens);
                    if own > held {
                        best_affinity = Some(own);
                        true
                    } else {
                        false
                    }
                }
                Some((bs, bp, _, _)) => sim > bs || (sim == bs && params > bp),
            };
            if better {
                if best.is_some_and(|(bs, bp, _, _)| sim != bs || params != bp) {
                    best_affinity = None;
                }
                best = Some((sim, params, seq, covered));
            }
        }
        best.filter(|(sim, _, _, _)| *sim >= self.config.similarity_threshold)
            .map(|(_, _, seq, covered)| (seq, covered))
    }

    fn create(&mut self, key: String, tokens: Vec<String>) -> TemplateMatch {
        while self.clusters.len() >= self.config.max_templates.max(1) {
            let Some((key, seq)) = self.index.lru.pop_first() else {
                break;
            };
            if let Some(c) = self.clusters.get_mut(&seq)
                && c.last_used != key
            {
                // Used since the entry was written: move it.
                c.lru_key = c.last_used;
                self.index.lru.insert(c.last_used, seq);
                continue;
            }
            self.remove(seq);
            self.stats.evicted_templates += 1;
        }
        let text: Arc<str> = tokens.join(" ").into();
        let mut salt = 0u64;
        let mut id = fnv1a(&text, salt);
        while self.index.ids.contains_key(&id) {
            salt += 1;
            id = fnv1a(&text, salt);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let wild = tokens.iter().map(|t| has_wildcard(t)).collect();
        let cluster = Cluster {
            id,
            tokens,
            key,
            count: 1,
            last_used: self.clock,
            lru_key: self.clock,
            aliases: Vec::new(),
            pending: Vec::new(),
            text: text.clone(),
            wild,
        };
        self.index_cluster(seq, &cluster);
        self.clusters.insert(seq, cluster);
        TemplateMatch {
            id,
            template: text,
            is_new: true,
            changed: false,
        }
    }

    fn index_cluster(&mut self, seq: u64, cluster: &Cluster) {
        self.index
            .buckets
            .entry(fnv1a(&cluster.key, 0))
            .or_default()
            .push(seq);
        self.index.ids.insert(cluster.id, seq);
        for alias in &cluster.aliases {
            self.index.ids.insert(*alias, seq);
        }
        self.index.lru.insert(cluster.lru_key, seq);
    }

    fn remove(&mut self, seq: u64) {
        let Some(cluster) = self.clusters.remove(&seq) else {
            return;
        };
        let route = fnv1a(&cluster.key, 0);
        if let Some(bucket) = self.index.buckets.get_mut(&route) {
            bucket.retain(|s| *s != seq);
            if bucket.is_empty() {
                self.index.buckets.remove(&route);
            }
        }
        self.index.ids.remove(&cluster.id);
        for alias in &cluster.aliases {
            self.index.ids.remove(alias);
        }
        self.index.lru.remove(&cluster.lru_key);
    }

    fn rebuild_index(&mut self) {
        self.index = Index::default();
        let mut clusters = std::mem::take(&mut self.clusters);
        for (seq, cluster) in &mut clusters {
            cluster.refresh();
            cluster.lru_key = cluster.last_used;
            self.index_cluster(*seq, cluster);
        }
        self.clusters = clusters;
    }

    /// After deserialising: takes `config` (settings come from the
    /// configuration, not the saved state) and rebuilds the lookup index.
    pub(crate) fn restored(&mut self, config: MinerConfig) {
        self.config = config;
        self.rebuild_index();
    }

    /// Writes the miner's state as CBOR (temporary file, synced, renamed).
    pub fn save(&self, path: &Path) -> Result<(), AnalyzerError> {
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes).map_err(|e| AnalyzerError::Eval {
            what: path.display().to_string(),
            message: format!("serialising the template miner: {e}"),
        })?;
        crate::state_file::write_atomic(path, &bytes)
    }

    /// Reads a state written by [`TemplateMiner::save`], keeping its
    /// configuration.
    pub fn load(path: &Path) -> Result<Self, AnalyzerError> {
        let bytes = std::fs::read(path).map_err(|source| AnalyzerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut miner: TemplateMiner =
            ciborium::from_reader(bytes.as_slice()).map_err(|e| AnalyzerError::Eval {
                what: path.display().to_string(),
                message: format!("not a saved template miner: {e}"),
            })?;
        let config = miner.config.clone();
        miner.restored(config);
        Ok(miner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn groups_lines_of_one_event() {
        let mut m = TemplateMiner::new(MinerConfig::default());
        let a = m.add("PacketResponder 1 for block blk_38865049064139660 terminating");
        let b = m.add("PacketResponder 0 for block blk_-6952295868487656571 terminating");
        assert!(a.is_new && !b.is_new);
        assert_eq!(a.id, b.id);
        assert_eq!(
            &*b.template,
            "PacketResponder <*> for block blk_<*> terminating"
        );
        let c = m.add("session opened for user root by (uid=0)");
        let d = m.add("session opened for user news by (uid=0)");
        assert_ne!(c.id, a.id);
        // Fewer than `min_variable_values` values: siblings; one word
        // differing in a long message merges one value earlier.
        assert!(d.is_new);
        let e = m.add("session opened for user test by (uid=0)");
        assert_eq!(c.id, e.id);
        assert!(e.changed);
        assert_eq!(&*e.template, "session opened for user <*> by (uid=<*>)");
        assert_eq!(m.add("session opened for user cyrus by (uid=0)").id, c.id);
        // The sibling's id now resolves to the merged template.
        assert_eq!(m.template(d.id).as_deref(), Some(&*e.template));
        assert_eq!(m.len(), 2);
        // Constants stay apart at three values.
        for state in ["LOOKING", "LEADING", "FOLLOWING"] {
            let n = m.add(&format!(
                "Notification: 1 (n.leader), 0x0 (n.zxid), {state} (my state)"
            ));
            assert!(n.is_new, "{state}");
        }
    }

    #[test]
    fn low_cardinality_positions_stay_constant() {
        let mut m = TemplateMiner::new(MinerConfig::default());
        let ok = m.add("Link ok");
        let err = m.add("Link error");
        assert_ne!(ok.id, err.id);
        assert_eq!(m.add("Link ok").id, ok.id);
        assert_eq!(&*m.add("Link error").template, "Link error");
        // Plain Drain merges them.
        let mut drain = TemplateMiner::new(MinerConfig {
            min_variable_values: 2,
            ..MinerConfig::default()
        });
        drain.add("Link ok");
        assert_eq!(&*drain.add("Link error").template, "Link <*>");
    }

    #[test]
    fn different_keys_and_empty_values_are_other_shapes() {
        let mut m = TemplateMiner::new(MinerConfig::default());
        let a = m.add("getRecentTasks: num=5,flags=0x1,totalTasks=12");
        let b = m.add("getRecentTasks: topActivity=ComponentInfo{com.a/.B}");
        assert_ne!(a.id, b.id, "{} / {}", a.template, b.template);
        assert!(key_difference("num=<*>", "topActivity=x"));
        assert!(!key_difference("uid=<*>", "uid=0"));
        let c = m.add("authentication failure; tty=NODEVssh rhost=10.0.0.1");
        m.add("authentication failure; tty=NODEVssh rhost=10.0.0.2");
        let d = m.add("authentication failure; tty=:0 rhost=");
        assert_ne!(c.id, d.id, "{}", d.template);
    }

    #[test]
    fn ties_go_to_the_template_of_the_same_shape() {
        let mut m = TemplateMiner::new(MinerConfig::default());
        let num = m.add("getRecentTasks: num=5,flags=0x1,totalTasks=12");
        let first = m.add("getRecentTasks: topActivity=ComponentInfo{com.a/com.a.Main}");
        // Every later component ties with both templates (one equal token of
        // two): it joins its own shape instead of counting as a value of the
        // first template, which would merge the two events.
        for app in ["b", "c", "d", "e", "f"] {
            let r = m.add(&format!(
                "getRecentTasks: topActivity=ComponentInfo{{com.{app}/com.{app}.Main}}"
            ));
            assert_eq!(r.id, first.id, "{}", r.template);
        }
        assert_eq!(
            m.add("getRecentTasks: num=7,flags=0x1,totalTasks=3").id,
            num.id
        );
        assert_eq!(m.len(), 2);
        // Interface names are constants of their events.
        let line = |i: &str, n: u32| {
            format!(
                "NIFF: node node-{n} has detected an available network connection on network 10.0.0.0 via interface {i}"
            )
        };
        let ee = m.add(&line("ee0", 1));
        let alt = m.add(&line("alt0", 2));
        let scip = m.add(&line("scip0", 3));
        assert!(ee.id != alt.id && alt.id != scip.id && ee.id != scip.id);
        assert_eq!(m.add(&line("ee0", 4)).id, ee.id);
        assert_eq!(m.add(&line("alt0", 5)).id, alt.id);
    }

    #[test]
    fn siblings_a_generalised_template_covers_are_absorbed() {
        let mut m = TemplateMiner::new(MinerConfig::default());
        let a = m.add(
            r#"acquire lock=1, tag="View Lock", name=com.android.systemui, ws=null, uid=1, pid=2"#,
        );
        // Differs in words at two positions: a sibling, pending.
        let b =
            m.add(r#"acquire lock=2, tag="RILJ", name=com.android.phone, ws=null, uid=1, pid=2"#);
        assert!(b.is_new);
        // A difference in a masked value makes variables at once; the first
        // template now covers its sibling, which it absorbs.
        let c = m.add(r#"acquire lock=3, tag="*launch*", name=android, ws=WorkSource{10113}, uid=1000, pid=1702"#);
        assert_eq!((c.id, c.changed), (a.id, true));
        assert_eq!(m.len(), 1);
        assert_eq!(m.template(b.id).as_deref(), Some(&*c.template));
        let again =
            m.add(r#"acquire lock=4, tag="RILJ", name=com.android.phone, ws=null, uid=1, pid=2"#);
        assert_eq!(again.id, a.id);
        assert_eq!(m.templates()[0].2, 4);
    }

    #[test]
    fn merge_token_keeps_punctuated_affixes() {
        assert_eq!(merge_token("uid=a", "uid=b"), "uid=<*>");
        assert_eq!(merge_token("(foo)", "(bar)"), "(<*>)");
        assert_eq!(merge_token("root", "news"), "<*>");
        assert_eq!(merge_token("a.b", "a.c"), "a.<*>");
        assert_eq!(merge_token(":", "::"), ":<*>");
        assert!(glob_match("uid=<*>", "uid=root"));
        assert!(glob_match("<*>", "x"));
        assert!(glob_match("a<*>b<*>c", "aXbYc"));
        assert!(!glob_match("(<*>)", "[x]"));
        assert!(!glob_match("rhost=<*>", "rhost="));
        assert!(glob_match("(<*>)", "()"));
        assert!(glob_match("é<*>é", "éxé"));
        assert!(glob_match("/<*>:<*>", "/a:b:c") && !glob_match("/<*>:<*>", "/ab"));
        assert_eq!(
            (
                find_str("a:b", ":"),
                find_str("ab", "abc"),
                find_str("x", "")
            ),
            (Some(1), None, Some(0))
        );
    }

    #[test]
    fn evicts_least_recently_used() {
        let cfg = MinerConfig {
            max_templates: 2,
            ..MinerConfig::default()
        };
        let mut m = TemplateMiner::new(cfg);
        let a = m.add("alpha one");
        m.add("beta two three");
        m.add("alpha one");
        m.add("gamma four five six");
        assert_eq!(m.len(), 2);
        assert_eq!(m.stats().evicted_templates, 1);
        assert!(m.template(a.id).is_some());
    }

    #[test]
    fn reloaded_miner_gives_same_ids() {
        let lines = [
            "Receiving block blk_1 src: /10.0.0.1:5 dest: /10.0.0.2:6",
            "Verification succeeded for blk_2",
            "session closed for user root",
            "session closed for user news",
        ];
        let mut m = TemplateMiner::new(MinerConfig::default());
        let ids: Vec<u64> = lines.iter().map(|l| m.add(l).id).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("miner.cbor");
        m.save(&path).expect("save");
        let mut back = TemplateMiner::load(&path).expect("load");
        assert_eq!(back.templates(), m.templates());
        for (line, id) in lines.iter().zip(&ids) {
            let got = back.add(line);
            assert_eq!(got.id, *id);
            assert!(!got.is_new);
        }
        // Ids come from the text, not the insertion order.
        let mut fresh = TemplateMiner::new(MinerConfig::default());
        assert_eq!(fresh.add(lines[1]).id, ids[1]);
    }

    #[test]
    fn loads_state_saved_before_the_token_buffers() {
        // Saved by the miner of commit 2c56169 (one `String` per token,
        // string route keys) after these lines.
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/logs/testdata/miner-2c56169.cbor");
        let mut m = TemplateMiner::load(&path).expect("old state loads");
        let ids: [(u64, &str); 7] = [
            (
                0x847e_a34c_bba2_2684,
                "Receiving block blk_<*> src: /<*>:<*> dest: /<*>:<*>",
            ),
            (0xbf20_46e2_ab9a_42dc, "Verification succeeded for blk_<*>"),
            (0x1298_b764_6266_bb4f, "session closed for user root"),
            (0x97e8_9f51_39a1_eed0, "session closed for user news"),
            (0xac67_0d98_95a9_3387, "session closed for user test"),
            (0x89a7_404a_e092_8ee5, "Link ok"),
            (0xe1ae_fc96_f7a6_3393, "Link error"),
        ];
        let held: Vec<(u64, String)> = m
            .templates()
            .into_iter()
            .map(|(id, t, _)| (id, t))
            .collect();
        let want: Vec<(u64, String)> = ids.iter().map(|(id, t)| (*id, t.to_string())).collect();
        assert_eq!(held, want);
        let v = m.add("Verification succeeded for blk_77");
        assert_eq!((v.id, v.is_new), (ids[1].0, false));
        assert_eq!(m.add("Link error").id, ids[6].0);
        // The pending siblings came back too: a fourth user merges them.
        let u = m.add("session closed for user cyrus");
        assert_eq!((u.id, u.changed), (ids[2].0, true));
        assert_eq!(&*u.template, "session closed for user <*>");
        assert_eq!(
            m.template(ids[4].0).as_deref(),
            Some("session closed for user <*>")
        );
    }

    #[test]
    fn bad_input_never_panics() {
        let mut m = TemplateMiner::new(MinerConfig::default());
        m.add("");
        m.add("   \t ");
        m.add_bytes(&[0xff, 0xfe, b' ', b'a', 0xc3]);
        let huge = "tok ".repeat(300_000);
        m.add(&huge);
        assert_eq!(m.stats().truncated_lines, 1);
        m.add(&"y".repeat(1 << 20));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20)) {
            let mut m = TemplateMiner::new(MinerConfig { max_templates: 5, ..MinerConfig::default() });
            for l in &lines {
                let r = m.add_bytes(l);
                prop_assert!(m.template(r.id).is_some());
            }
            prop_assert!(m.len() <= 5);
        }

        #[test]
        fn random_strings_never_panic(lines in proptest::collection::vec("\\PC{0,80}", 1..20)) {
            let mut m = TemplateMiner::new(MinerConfig::default());
            for l in &lines {
                let r = m.add(l);
                let held = m.template(r.id);
                prop_assert_eq!(held.as_deref(), Some(&*r.template));
            }
        }
    }
}
