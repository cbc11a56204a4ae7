//! Quality evaluations on public labelled data: NAB for anomaly detection,
//! Loghub for log parsing, Loghub's labelled BGL lines for log alerting.
//! Each produces a report that `vigie eval` prints as a table or JSON.

pub mod bgl;
pub mod loghub;
pub mod nab;
