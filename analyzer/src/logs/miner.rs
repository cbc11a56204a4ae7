//! A Drain-style template miner.
//!
//! Each line is masked ([`super::mask`]) and routed by its token count and its
//! first [`MinerConfig::depth`] tokens (a token with a variable routes as
//! `<*>`) to a bucket of templates, as in Drain's fixed-depth parse tree. The
//! most similar template of the bucket (share of positions with equal tokens,
//! Drain's `seqDist`) takes the line when the similarity reaches
//! [`MinerConfig::similarity_threshold`]; the positions that differ become
//! `<*>` (keeping a common punctuated prefix or suffix, so `uid=a` and `uid=b`
//! give `uid=<*>`). Otherwise the line starts a new template.
//!
//! A template's id is a hash of its text when created, so it is stable across
//! runs; with [`TemplateMiner::save`] and [`TemplateMiner::load`] the miner
//! carries on where it stopped and gives the same ids. Memory is bounded by
//! [`MinerConfig::max_templates`]: the least recently used template is evicted.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mask::{Masker, WILDCARD};
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
    /// The template text after this line, `<*>` for variables.
    pub template: String,
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
}

/// Lookup structures derived from `clusters` (rebuilt on load).
#[derive(Debug, Clone, Default)]
struct Index {
    /// Route key → creation sequence numbers.
    buckets: HashMap<String, Vec<u64>>,
    /// Template id → creation sequence number.
    ids: HashMap<u64, u64>,
    /// Last use → creation sequence number (least recently used first).
    lru: BTreeMap<u64, u64>,
}

fn fnv1a(s: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
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

/// Drain's similarity: share of positions with equal tokens, and the number
/// of wildcard positions of the template (tie-break).
fn similarity(template: &[String], tokens: &[String]) -> (f64, usize) {
    if template.is_empty() {
        return (1.0, 0);
    }
    let mut same = 0usize;
    let mut params = 0usize;
    for (t, c) in template.iter().zip(tokens) {
        if t == c {
            same += 1;
        } else if t.contains(WILDCARD) && glob_match(t, c) {
            params += 1;
        }
    }
    (same as f64 / template.len() as f64, params)
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

/// True when `token` matches `pattern`, where `<*>` stands for any text,
/// but a value ending a `key=<*>` is not empty (`rhost=` is another shape
/// than `rhost=<*>`).
fn glob_match(pattern: &str, token: &str) -> bool {
    let mut parts = pattern.split(WILDCARD);
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = token.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    let key_value = last.is_empty() && pattern.ends_with(&format!("={WILDCARD}"));
    rest.ends_with(last) && !(key_value && rest.is_empty())
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
        let seq = self.index.ids.get(&id)?;
        self.clusters.get(seq).map(|c| c.tokens.join(" "))
    }

    /// `(id, template text, lines)` of every template, oldest first.
    pub fn templates(&self) -> Vec<(u64, String, u64)> {
        self.clusters
            .values()
            .map(|c| (c.id, c.tokens.join(" "), c.count))
            .collect()
    }

    /// Adds a line given as bytes (invalid UTF-8 is replaced).
    pub fn add_bytes(&mut self, content: &[u8]) -> TemplateMatch {
        self.add(&String::from_utf8_lossy(content))
    }

    /// Adds one line's content (the message, without its header).
    pub fn add(&mut self, content: &str) -> TemplateMatch {
        let tokens = self.config.masker.tokenize(content);
        self.stats.lines += 1;
        if tokens.truncated {
            self.stats.truncated_lines += 1;
        }
        let tokens = tokens.tokens;
        self.clock += 1;
        let key = route_key(&tokens, self.config.depth);
        let best = self.best_match(&key, &tokens);
        let Some(seq) = best else {
            return self.create(key, tokens);
        };
        let Some(cluster) = self.clusters.get(&seq) else {
            return self.create(key, tokens);
        };
        let positions: Vec<usize> = cluster
            .tokens
            .iter()
            .zip(&tokens)
            .enumerate()
            .filter(|(_, (t, c))| t != c && !(t.contains(WILDCARD) && glob_match(t, c)))
            .map(|(i, _)| i)
            .collect();
        // Only word-for-word differences wait for more values; a difference
        // in a path, a list or a masked token makes a variable at once.
        let words_differ = positions.iter().any(|&i| {
            word_difference(&cluster.tokens[i], &tokens[i])
                || key_difference(&cluster.tokens[i], &tokens[i])
        });
        if !words_differ || self.config.min_variable_values <= 2 {
            return self.join(seq, &tokens, Vec::new());
        }
        let values: Vec<String> = positions.iter().map(|&i| tokens[i].clone()).collect();
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
            return self.join(seq, &tokens, members);
        }
        let created = self.create(key, tokens);
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
    /// `members`, and generalises the template.
    fn join(&mut self, seq: u64, tokens: &[String], members: Vec<u64>) -> TemplateMatch {
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
            return self.create(String::new(), tokens.to_vec());
        };
        let mut changed = false;
        let others = absorbed.iter().map(|m| m.tokens.as_slice());
        for other in std::iter::once(tokens).chain(others) {
            for (t, c) in cluster.tokens.iter_mut().zip(other) {
                if t != c && !(t.contains(WILDCARD) && glob_match(t, c)) {
                    let merged = merge_token(t, c);
                    if merged != *t {
                        *t = merged;
                        changed = true;
                    }
                }
            }
        }
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
        let kept: Vec<u64> = cluster.aliases.clone();
        for id in new_ids.into_iter().filter(|id| kept.contains(id)) {
            self.index.ids.insert(id, seq);
        }
        cluster.count += 1;
        self.index.lru.remove(&cluster.last_used);
        cluster.last_used = clock;
        self.index.lru.insert(clock, seq);
        TemplateMatch {
            id: cluster.id,
            template: cluster.tokens.join(" "),
            is_new: false,
            changed: changed || !absorbed.is_empty(),
        }
    }

    fn best_match(&self, key: &str, tokens: &[String]) -> Option<u64> {
        let bucket = self.index.buckets.get(key)?;
        let mut best: Option<(f64, usize, u64)> = None;
        for &seq in bucket {
            let Some(cluster) = self.clusters.get(&seq) else {
                continue;
            };
            let (sim, params) = similarity(&cluster.tokens, tokens);
            let better = match best {
                None => true,
                Some((bs, bp, _)) => sim > bs || (sim == bs && params > bp),
            };
            if better {
                best = Some((sim, params, seq));
            }
        }
        best.filter(|(sim, _, _)| *sim >= self.config.similarity_threshold)
            .map(|(_, _, seq)| seq)
    }

    fn create(&mut self, key: String, tokens: Vec<String>) -> TemplateMatch {
        while self.clusters.len() >= self.config.max_templates.max(1) {
            let Some((_, seq)) = self.index.lru.pop_first() else {
                break;
            };
            self.remove(seq);
            self.stats.evicted_templates += 1;
        }
        let text = tokens.join(" ");
        let mut salt = 0u64;
        let mut id = fnv1a(&text, salt);
        while self.index.ids.contains_key(&id) {
            salt += 1;
            id = fnv1a(&text, salt);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let cluster = Cluster {
            id,
            tokens,
            key,
            count: 1,
            last_used: self.clock,
            aliases: Vec::new(),
            pending: Vec::new(),
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
            .entry(cluster.key.clone())
            .or_default()
            .push(seq);
        self.index.ids.insert(cluster.id, seq);
        for alias in &cluster.aliases {
            self.index.ids.insert(*alias, seq);
        }
        self.index.lru.insert(cluster.last_used, seq);
    }

    fn remove(&mut self, seq: u64) {
        let Some(cluster) = self.clusters.remove(&seq) else {
            return;
        };
        if let Some(bucket) = self.index.buckets.get_mut(&cluster.key) {
            bucket.retain(|s| *s != seq);
            if bucket.is_empty() {
                self.index.buckets.remove(&cluster.key);
            }
        }
        self.index.ids.remove(&cluster.id);
        for alias in &cluster.aliases {
            self.index.ids.remove(alias);
        }
        self.index.lru.remove(&cluster.last_used);
    }

    fn rebuild_index(&mut self) {
        self.index = Index::default();
        let clusters = std::mem::take(&mut self.clusters);
        for (seq, cluster) in &clusters {
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
        super::state::write_atomic(path, &bytes)
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
            b.template,
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
        assert_eq!(e.template, "session opened for user <*> by (uid=<*>)");
        assert_eq!(m.add("session opened for user cyrus by (uid=0)").id, c.id);
        // The sibling's id now resolves to the merged template.
        assert_eq!(m.template(d.id).as_deref(), Some(e.template.as_str()));
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
        assert_eq!(m.add("Link error").template, "Link error");
        // Plain Drain merges them.
        let mut drain = TemplateMiner::new(MinerConfig {
            min_variable_values: 2,
            ..MinerConfig::default()
        });
        drain.add("Link ok");
        assert_eq!(drain.add("Link error").template, "Link <*>");
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
                prop_assert_eq!(m.template(r.id), Some(r.template));
            }
        }
    }
}
