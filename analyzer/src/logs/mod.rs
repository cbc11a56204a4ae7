//! Log template mining (placeholder; see the logs issue).
