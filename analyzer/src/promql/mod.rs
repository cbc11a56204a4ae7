//! PromQL evaluation over stored samples (placeholder; see the storage-and-query issue).
